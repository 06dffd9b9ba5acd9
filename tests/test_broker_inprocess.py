"""The broker's rules, in process: placement, dispatch, interact coalescing and capacity.

No node process and no clock: the parts are built as broker/node.py wires them, over a real
SQLite file and a real ZeroMQ ROUTER (inproc) with a DEALER standing in for the device, and
driven call by call. Each test runs in well under a second and pins one rule that the
process-level suites reach only by timing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zmq

from broker import capacity
from broker.cells import Cells
from broker.dispatch import Dispatch, NoRoom
from broker.interacts import Interacts
from broker.placement import DeviceTable
from broker.refusal import Refused
from broker.sessions import OpenSessions
from broker.store import (NEEDS_WORK, SUPERSEDED, Request, SessionRecord, Store,
                          sqlite_url)
from broker.store.sqlite import SQLiteStore
from protocol import msgtypes as mt
from protocol.sockets import BusSocket
from protocol.wire import Session

pytestmark = pytest.mark.timeout(30)

KEY = b"inprocess-test-key"
log = logging.getLogger("cellbus.test")


# -- placement: broker/placement.py ------------------------------------------------------------

def table(**capacities: int) -> DeviceTable:
    devices = DeviceTable()
    for name, places in capacities.items():
        devices.heard(name, name.encode(), {"capacity": places, "load": 0, "sessions": []})
    return devices


def test_a_session_stays_on_the_device_its_worker_lives_on() -> None:
    devices = table(d1=1, d2=8)
    devices.heard("d1", b"d1", {"capacity": 1, "load": 1, "sessions": ["s1"]})
    assert devices.place("s1") == "d1"  # d1 is full, d2 has room: affinity wins
    assert devices.place("s2") == "d2"


def test_a_burst_of_new_sessions_spreads_and_stops_at_capacity() -> None:
    devices = table(d1=2, d2=2)
    placed = [devices.place(f"s{i}") for i in range(5)]
    assert sorted(p for p in placed[:4] if p) == ["d1", "d1", "d2", "d2"]
    assert placed[4] is None
    assert devices.room() == 0


def test_places_promised_to_waiting_requests_are_kept_for_them() -> None:
    devices = table(d1=2)
    assert devices.place("s1", reserve=1) == "d1"  # 2 free, 1 promised
    assert devices.place("s2", reserve=1) is None  # 1 free, 1 promised
    assert devices.place("s2") == "d1"


def test_a_draining_device_takes_no_new_session_and_an_unused_place_is_given_back() -> None:
    devices = table(d1=1, d2=1)
    devices.drain("d2")
    assert devices.place("s1") == "d1"
    assert devices.place("s2") is None
    devices.unplace("s1")
    assert devices.place("s2") == "d1"


# -- capacity: broker/capacity.py ---------------------------------------------------------------

def test_a_refused_crowd_is_told_to_come_back_spread_over_the_jitter() -> None:
    rng = random.Random(7)
    waits = {capacity.retry_after(rng) for _ in range(200)}
    assert waits == set(range(capacity.RETRY_AFTER,
                              capacity.RETRY_AFTER + capacity.RETRY_JITTER + 1))


def test_a_devices_refusal_says_when_to_retry_once() -> None:
    content: dict[str, Any] = {"ename": capacity.AT_CAPACITY, "evalue": "full",
                               "traceback": ["x"]}
    assert capacity.explain_refusal(content, 6)
    assert content["evalue"] == "full; no room for a new session now; run the cell again in 6 s"
    assert content["traceback"][-1].endswith("run the cell again in 6 s")
    assert capacity.explain_refusal(content, 9)  # says so already: left alone
    assert content["evalue"].count("retry") + content["evalue"].count("again") == 1
    assert not capacity.explain_refusal({"ename": "ValueError", "evalue": "x"})


# -- dispatch and interacts over a real store and a real socket -------------------------------

@dataclass
class Parts:
    wire: Session
    store: Store
    devices: DeviceTable
    dispatch: Dispatch
    interacts: Interacts
    device: BusSocket
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def received(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` messages the device gets (each within 5 s)."""
        reader = Session(KEY)  # a fresh Session: a request sent again is no replay here
        got = []
        for _ in range(count):
            frames = await asyncio.wait_for(self.device.recv_frames(), 5)
            got.append(reader.deserialize(frames)[1])
        return got

    async def nothing_more(self) -> None:
        """The device got nothing else: a marker sent now is the next thing it gets."""
        marker = self.wire.msg(mt.BROKER_HEARTBEAT, {})
        self.dispatch.post(b"d1", marker)
        [msg] = await self.received(1)
        assert msg["msg_id"] == marker["msg_id"], msg["msg_type"]

    async def add(self, session: str, code: str = "1", *, device: str | None = None,
                  cell_id: str = "c1") -> Request:
        """An execute request of ``session`` (worksheet ``w-<session>``) in the store."""
        record = SessionRecord(session=session, user="u", worksheet=f"w-{session}",
                               device=device, state="open", created=1.0, last_activity=1.0)
        message = self.wire.msg(mt.EXECUTE_REQUEST, {"code": code}, metadata={"cellbus": {
            "user": "u", "worksheet": f"w-{session}", "cell_id": cell_id, "session": session}})
        return await self.store.add_session_request(record, Request(
            msg_id=message["msg_id"], session=session, user="u", worksheet=f"w-{session}",
            cell_id=cell_id, msg_type=mt.EXECUTE_REQUEST, input=code, message=message,
            device=device))


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    """The parts as broker/node.py wires them; device d1 (capacity 1) is connected."""
    wire = Session(KEY)
    store = SQLiteStore(sqlite_url(tmp_path / "cellbus.db"))
    await store.open()
    ctx = zmq.Context()
    router = BusSocket(ctx, zmq.ROUTER)
    router.router_mandatory = True
    device = BusSocket(ctx, zmq.DEALER)
    for sock in (router, device):
        sock.linger = 0
    router.bind("inproc://broker-devices")
    device.routing_id = b"d1"
    device.connect("inproc://broker-devices")
    device.send_now(wire.serialize(wire.msg(mt.DEVICE_REGISTER, {})))
    await asyncio.wait_for(router.recv_frames(), 5)  # d1 is routable from here on
    tasks: list[asyncio.Task[Any]] = []

    def spawn(coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        tasks.append(asyncio.create_task(coro, name=name))
        return tasks[-1]

    devices = table(d1=1)
    sessions = OpenSessions(store)
    cells = Cells(store)
    dispatch = Dispatch(wire=wire, store=store, devices=devices, sessions=sessions,
                        sock=router, spawn=spawn, log=log)
    interacts = Interacts(wire=wire, store=store, cells=cells, sessions=sessions,
                          dispatch=dispatch)
    dispatch.hold_back = interacts.holds
    try:
        yield Parts(wire, store, devices, dispatch, interacts, device, tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        router.close()
        device.close()
        ctx.term()
        await store.close()


async def test_a_new_session_with_every_device_full_is_refused_and_one_with_none_waits(
        parts: Parts) -> None:
    assert parts.dispatch.place("s1", None) == "d1"
    with pytest.raises(NoRoom) as refused:
        parts.dispatch.place("s2", None)
    assert capacity.RETRY_AFTER <= refused.value.retry_after
    assert str(refused.value) == f"at capacity, retry in {refused.value.retry_after} s"
    assert parts.dispatch.place("s1", "d1") == "d1"  # its own place
    parts.devices.left("d1")
    assert parts.dispatch.place("s3", None) is None  # no device: the store waits


async def test_a_pass_hands_out_in_order_and_holds_a_session_until_a_place_frees(
        parts: Parts) -> None:
    first = await parts.add("s1")
    second = await parts.add("s2")
    later = await parts.add("s1", "2", cell_id="c2")
    await parts.dispatch.dispatch_pending()
    got = await parts.received(2)
    assert [m["msg_id"] for m in got] == [first.msg_id, later.msg_id]  # s1 took the place
    assert got[0]["metadata"]["cellbus"]["sent"] != got[1]["metadata"]["cellbus"]["sent"]
    assert parts.dispatch.held == {"s2"}
    assert parts.dispatch.place("s2", None) is None  # waits behind its request
    stored = await parts.store.get_request(second.msg_id)
    assert stored is not None and stored.device is None and stored.status == NEEDS_WORK

    parts.devices.heard("d1", b"d1", {"capacity": 2, "load": 1, "sessions": ["s1"]})
    parts.dispatch.room_freed()
    [msg] = await parts.received(1)
    assert msg["msg_id"] == second.msg_id
    assert parts.dispatch.held == frozenset()
    stored = await parts.store.get_request(second.msg_id)
    assert stored is not None and stored.device == "d1"
    await parts.nothing_more()



async def test_a_running_pass_holds_back_only_the_sessions_with_requests_waiting(
        parts: Parts, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a pass runs, a request of a session with nothing waiting goes straight out; one
    of a session whose request waits (stored before the pass, or during it) waits behind it
    until a pass has handed that out. (Before, every known session's request waited for the
    next pass while one ran: a loaded broker went from pass to pass.)"""
    parts.devices.heard("d1", b"d1", {"capacity": 4, "load": 0, "sessions": []})
    waiting = await parts.add("s1", device=None)
    parts.dispatch.queued("s1")
    read, go_on = asyncio.Event(), asyncio.Event()
    requests = parts.store.requests

    async def slow_read(*args: Any, **kwargs: Any) -> list[Request]:
        found = await requests(*args, **kwargs)  # what the pass finds: read, then held up
        read.set()
        await go_on.wait()
        return found

    monkeypatch.setattr(parts.store, "requests", slow_read)
    await asyncio.wait_for(read.wait(), 5)  # queued() began a pass; it has read the store
    assert parts.dispatch.place("s2", "d1") == "d1"  # nothing of s2 waits: straight out
    assert parts.dispatch.place("s1", "d1") is None  # behind its waiting request
    during = await parts.add("s3", device=None)  # stored while the pass runs, after its read
    parts.dispatch.queued("s3")
    go_on.set()
    [msg] = await parts.received(1)
    assert msg["msg_id"] == waiting.msg_id
    await parts.dispatch.dispatch_pending()  # the pass queued() asked for, or this one
    assert parts.dispatch.place("s1", "d1") == "d1"  # handed out: s1 waits no more
    got = [m["msg_id"] for m in await parts.received(1)]
    assert got == [during.msg_id]  # the pass after the one it came during handed it out
    assert parts.dispatch.place("s3", "d1") == "d1"
    await parts.nothing_more()


async def test_a_request_that_went_straight_out_during_a_pass_frees_its_session_there(
        parts: Parts, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass may read a request that is on its way straight out (stored with its device,
    not sent yet). Once it went, the pass does not hold the session's next request back for
    the rest of the pass (and so for the pass after it, and so on)."""
    parts.devices.heard("d1", b"d1", {"capacity": 4, "load": 0, "sessions": []})
    first = await parts.add("s0", device=None)
    on_its_way = await parts.add("s2", device="d1")
    last = await parts.add("s1", device=None)
    placing = [asyncio.Event(), asyncio.Event()]  # the pass places s0's, then s1's request
    go_on = [asyncio.Event(), asyncio.Event()]
    assign = parts.store.assign_request

    async def slow_assign(msg_id: str, device: str) -> Request:
        n = 0 if msg_id == first.msg_id else 1
        placing[n].set()
        await go_on[n].wait()
        return await assign(msg_id, device)

    monkeypatch.setattr(parts.store, "assign_request", slow_assign)
    parts.dispatch.queued("s0")
    parts.dispatch.queued("s1")
    await asyncio.wait_for(placing[0].wait(), 5)  # the pass read all three
    assert await parts.dispatch.send(on_its_way)  # straight out, as Intake.execute sends it
    go_on[0].set()
    await asyncio.wait_for(placing[1].wait(), 5)  # the pass came past it, and waits on s1's
    assert parts.dispatch.place("s2", "d1") == "d1"
    assert parts.dispatch.place("s1", "d1") is None
    go_on[1].set()
    got = [m["msg_id"] for m in await parts.received(3)]
    assert got == [on_its_way.msg_id, first.msg_id, last.msg_id]
    await parts.nothing_more()


async def test_a_request_given_back_by_a_lost_device_is_handed_out_again_signed_afresh(
        parts: Parts) -> None:
    request = await parts.add("s1", device="d1")
    assert await parts.dispatch.send(request)
    assert not await parts.dispatch.send(request)  # handed out already: not twice
    parts.dispatch.handed.discard(request.msg_id)  # what DeviceWatch does for a lost one
    await parts.dispatch.dispatch_pending()
    first, again = await parts.received(2)
    assert first["msg_id"] == again["msg_id"] == request.msg_id
    assert first["header"]["msg_id"] == again["header"]["msg_id"]
    assert first["metadata"]["cellbus"]["sent"] != again["metadata"]["cellbus"]["sent"]


async def test_interrupt_and_shutdown_go_to_the_device_holding_the_session(
        parts: Parts) -> None:
    assert parts.dispatch.holding("s1", "d1") == "d1"  # recorded on a live device
    assert parts.dispatch.holding("s1", "gone") is None
    assert parts.dispatch.place("s2", None) == "d1"
    assert parts.dispatch.holding("s2") == "d1"  # placed, starting
    note = parts.wire.msg(mt.INTERRUPT_REQUEST, {})
    assert await parts.dispatch.send_to("d1", note)
    assert not await parts.dispatch.send_to("gone", note)
    [msg] = await parts.received(1)
    assert msg["msg_id"] == note["msg_id"]


async def shows_interact(parts: Parts, cell: Request, interact_id: str = "i1") -> None:
    """The cell's output shows the interact (its ``interact_start`` is stored), as a run of
    ``@interact`` leaves it: the broker runs interact requests only for one it shows."""
    start = parts.wire.msg(mt.INTERACT_START, {"interact_id": interact_id, "controls": {
        "n": {"type": "slider", "start": 1, "end": 9}}, "layout": ["n"]}, parent=cell.message)
    await parts.store.append_messages([(cell.session, start)])


async def interact(parts: Parts, state: int) -> dict[str, Any]:
    msg = parts.wire.msg(mt.INTERACT_REQUEST, {"interact_id": "i1", "values": {"n": state},
                                               "state": state})
    reply, _ = await parts.interacts.request(msg, ("u", "w-s1", "c1"))
    return {**reply, "msg_id": msg["msg_id"]}


async def test_interact_runs_are_coalesced_one_with_the_device_the_newest_next(
        parts: Parts) -> None:
    cell = await parts.add("s1", device="d1")
    assert await parts.dispatch.send(cell)
    await shows_interact(parts, cell)
    runs = [await interact(parts, state) for state in (1, 2, 3)]
    assert [r["superseded"] for r in runs] == [0, 0, 1]  # 3 supersedes 2, which waited
    stored = await parts.store.get_request(runs[1]["msg_id"])
    assert stored is not None and stored.status == SUPERSEDED
    got = await parts.received(2)
    assert [m["msg_id"] for m in got] == [cell.msg_id, runs[0]["msg_id"]]
    await parts.nothing_more()  # run 3 waits while run 1 is with the device

    ended = await parts.store.get_request(runs[0]["msg_id"])
    assert ended is not None
    await parts.interacts.finished(ended)
    [msg] = await parts.received(1)
    assert msg["msg_id"] == runs[2]["msg_id"] and msg["content"]["values"] == {"n": 3}


async def test_an_interact_in_a_cell_of_another_session_is_refused(parts: Parts) -> None:
    await parts.add("s1", device="d1")
    msg = parts.wire.msg(mt.INTERACT_REQUEST, {"interact_id": "i1", "values": {},
                                               "state": 1})
    with pytest.raises(Refused) as refused:
        await parts.interacts.request(msg, ("u", "w-s1", "c9"))
    assert refused.value.http_status == 404
    with pytest.raises(Refused) as refused:
        await parts.interacts.request(parts.wire.msg(mt.INTERACT_REQUEST, {
            "interact_id": "i1", "values": [], "state": 1}), ("u", "w-s1", "c1"))
    assert refused.value.http_status == 400

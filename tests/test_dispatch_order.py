"""The order rule of broker/dispatch.py against requests given back by devices, in process.

A session's requests reach a device in the order the broker accepted them. A request handed
to a device that then drains, is lost or cannot be reached is given back and placed anew by a
dispatch pass; the session's next request, accepted meanwhile, needs a new worker elsewhere
and went there straight away, ahead of the one given back. These tests accept that next
request in each window and check what the device that runs the session gets, and in which
order. The parts are those of tests/test_broker_inprocess.py (real SQLite, real sockets).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import zmq

from broker.control import Control
from broker.devices import DeviceWatch
from broker.node import Broker
from broker.store import OPEN, WORKING, Request, SessionRecord, StoreError, sqlite_url
from broker.store.sqlite import SQLiteStore
from protocol import msgtypes as mt
from protocol.sockets import BusSocket
from protocol.wire import Message, Session
from test_broker_inprocess import KEY, Parts, log, parts  # noqa: F401 (a fixture)
from test_broker_reconcile import DEVICE, broker, device  # noqa: F401 (fixtures)
from test_broker_reconcile import KEY as RECONCILE_KEY

pytestmark = pytest.mark.timeout(30)


async def connect(parts: Parts, name: str) -> BusSocket:
    """A DEALER standing in for device ``name``, routable from the broker when returned."""
    sock = BusSocket(parts.device.context, zmq.DEALER)
    sock.linger = 0
    sock.routing_id = name.encode()
    sock.connect("inproc://broker-devices")
    router = cast(BusSocket, parts.dispatch._sock)  # noqa: SLF001 (the broker's own end)
    sock.send_now(parts.wire.serialize(parts.wire.msg(mt.DEVICE_REGISTER, {})))
    await asyncio.wait_for(router.recv_frames(), 5)
    return sock


async def received(sock: BusSocket, count: int) -> list[str]:
    """The msg_ids of the next ``count`` messages ``sock`` gets (each within 5 s)."""
    reader = Session(KEY)  # a fresh Session: a request sent again is no replay here
    got = []
    for _ in range(count):
        frames = await asyncio.wait_for(sock.recv_frames(), 5)
        got.append(reader.deserialize(frames)[1]["msg_id"])
    return got


def watch(parts: Parts) -> DeviceWatch:
    """The broker's DeviceWatch over these parts (no output: nothing here ends a cell)."""
    metrics = SimpleNamespace(devices_lost=SimpleNamespace(inc=lambda: None))
    return DeviceWatch(wire=parts.wire, store=parts.store, dispatch=parts.dispatch,
                       outputs=cast(Any, None), metrics=cast(Any, metrics), log=log)


async def accept(parts: Parts, session: str, device: str | None) -> Request:
    """What Intake.execute does with the session's next request: place it, store it, then
    send it straight out, or leave it queued for a pass."""
    placed = parts.dispatch.place(session, device)
    request = await parts.add(session, "2", device=placed, cell_id="c2")
    if placed is not None:
        await parts.dispatch.send(request)
    else:
        parts.dispatch.queued(session)
    return request


async def handed_to_d1(parts: Parts) -> tuple[Request, BusSocket]:
    """Devices d1 and d2 (2 places each); s1's first request is handed to d1."""
    d2 = await connect(parts, "d2")
    for name in ("d1", "d2"):
        parts.devices.heard(name, name.encode(), {"capacity": 2, "load": 0, "sessions": []})
    assert parts.dispatch.place("s1", "d1") == "d1"  # its previous device, which has room
    first = await parts.add("s1", device="d1")
    assert await parts.dispatch.send(first)
    [got] = await parts.received(1)
    assert got["msg_id"] == first.msg_id
    return first, d2


async def test_a_request_after_one_a_draining_device_gives_back_runs_after_it(
        parts: Parts) -> None:
    """d1 drains with s1's first request still queued on it (its device gives such requests
    back once nothing of the session runs there); s1's next request, accepted before they
    come back, goes to d2 after the first, not ahead of it."""
    first, d2 = await handed_to_d1(parts)
    try:
        parts.devices.drain("d1")  # the broker read the device_drain (broker/node.py)
        later = await accept(parts, "s1", "d1")
        drain = parts.wire.msg(mt.DEVICE_DRAIN, {"returned": [first.msg_id], "final": False})
        await watch(parts).drained("d1", drain)
        assert await received(d2, 2) == [first.msg_id, later.msg_id]
    finally:
        d2.close()


async def test_a_request_after_one_a_lost_device_had_runs_after_it(parts: Parts) -> None:
    """d1 goes silent past its expiry with s1's first request on it; s1's next request,
    accepted before the broker has taken the first back, goes to d2 after it."""
    first, d2 = await handed_to_d1(parts)
    try:
        parts.devices.devices["d1"].last_heard -= parts.devices.expiry + 1
        assert parts.devices.expired() == ["d1"]
        later = await accept(parts, "s1", "d1")
        await watch(parts).lost("d1")
        assert await received(d2, 2) == [first.msg_id, later.msg_id]
    finally:
        d2.close()


async def test_a_request_after_one_its_device_could_not_be_sent_runs_after_it(
        parts: Parts) -> None:
    """s1's first request cannot be sent to d3 (not connected: a broker rebind, a network
    blip); d3 is back before the broker sends it again, and s1's next request, accepted
    meanwhile, reaches d3 after the first, not ahead of it."""
    parts.devices.heard("d3", b"d3", {"capacity": 2, "load": 0, "sessions": []})
    parts.devices.left("d1")
    assert parts.dispatch.place("s1", None) == "d3"
    first = await parts.add("s1", device="d3")
    assert not await parts.dispatch.send(first)  # EHOSTUNREACH: sent again shortly
    d3 = await connect(parts, "d3")
    try:
        later = await accept(parts, "s1", "d3")
        assert await received(d3, 2) == [first.msg_id, later.msg_id]
    finally:
        d3.close()


async def test_a_pass_sends_nothing_of_a_session_after_a_request_it_could_not_send(
        parts: Parts, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass cannot send s1's first request (the device's pipe refuses it once: a blip);
    it sends s1's second one not then, ahead of it, but after it, when it tries again."""
    first = await parts.add("s1", device=None)
    second = await parts.add("s1", "2", cell_id="c2")
    send = parts.wire.send
    refused: list[str] = []

    async def blip(sock: Any, message: Any, idents: Any) -> None:
        if message["msg_id"] == first.msg_id and not refused:
            refused.append(message["msg_id"])
            raise zmq.ZMQError(zmq.EHOSTUNREACH)
        await send(sock, message, idents)

    monkeypatch.setattr(parts.wire, "send", blip)
    await parts.dispatch.dispatch_pending()
    assert refused == [first.msg_id]
    got = await parts.received(2)  # the pass REDISPATCH_AFTER later sends both
    assert [m["msg_id"] for m in got] == [first.msg_id, second.msg_id]


# -- a broker in this process (tests/test_broker_reconcile.py's parts) -------------------------

def execute(broker: Broker, cell_id: str) -> Message:
    """An evaluate of cell ``cell_id`` of worksheet u/w, as a gateway sends it."""
    return broker.session.msg(mt.EXECUTE_REQUEST, {"code": f"print({cell_id!r})"}, metadata={
        "cellbus": {"user": "u", "worksheet": "w", "cell_id": cell_id}})


async def routable(broker: Broker) -> None:
    """Wait until the broker can send to DEVICE (its connection is up), handing out nothing."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not broker.dispatch.offer(DEVICE.encode(), broker.session.msg(mt.BROKER_HEARTBEAT, {})):
        assert loop.time() < deadline, "the device never became routable"
        await asyncio.sleep(0.01)


async def executes(device: BusSocket, count: int) -> list[str]:
    """The msg_ids of the next ``count`` execute requests the device gets (within 10 s; the
    broker's heartbeats in between are skipped)."""
    got: list[str] = []

    async def read() -> None:
        while len(got) < count:
            _, msg = Session(RECONCILE_KEY).deserialize(await device.recv_frames())
            if msg["msg_type"] == mt.EXECUTE_REQUEST:
                got.append(msg["msg_id"])

    try:
        await asyncio.wait_for(read(), 10)
    except TimeoutError:
        pass  # the assertion on what came says what did not
    return got


async def test_a_request_whose_device_left_while_it_was_stored_is_placed_again_in_order(
        broker: Broker, device: BusSocket, monkeypatch: pytest.MonkeyPatch) -> None:
    """The device a new session's first request was placed on leaves while the request is
    being stored (a final device_drain read meanwhile), so it cannot be sent: it waits for a
    pass, and the session's next request does not go out ahead of it once a device is back
    (before, the first stayed needs_work with no pass to come, and the next one went)."""
    stored, go_on = asyncio.Event(), asyncio.Event()
    add = broker.store.add_session_request

    async def slow_add(*args: Any, **kwargs: Any) -> Request:
        stored.set()
        await go_on.wait()
        return await add(*args, **kwargs)

    monkeypatch.setattr(broker.store, "add_session_request", slow_add)
    first = execute(broker, "c1")
    accepting = asyncio.create_task(broker.intake.execute(first, ("u", "w", "c1")))
    await asyncio.wait_for(stored.wait(), 5)
    broker.devices.left(DEVICE)
    go_on.set()
    await asyncio.wait_for(accepting, 5)
    broker.devices.heard(DEVICE, DEVICE.encode(), {"capacity": 4, "load": 0})  # back
    await routable(broker)
    later = execute(broker, "c2")
    await broker.intake.execute(later, ("u", "w", "c2"))
    assert await executes(device, 2) == [first["msg_id"], later["msg_id"]]


async def test_after_a_restart_a_request_waits_behind_one_left_in_the_store(
        tmp_path: Path) -> None:
    """A broker restarts with a request of worksheet u/w waiting in its store; a device is
    heard before any pass has run, and the worksheet's next request goes out after the one
    that waited (before, it went straight out and the one that waited had no pass to come)."""
    url = sqlite_url(tmp_path / "cellbus.db")
    before = Broker(Session(RECONCILE_KEY), SQLiteStore(url), gateway_bind="tcp://127.0.0.1:*",
                    device_bind="tcp://127.0.0.1:*", publish_bind="tcp://127.0.0.1:*")
    before.insecure = True
    await before.start()
    try:
        first = execute(before, "c1")
        await before.intake.execute(first, ("u", "w", "c1"))  # no device: it waits
    finally:
        await before.stop()
    broker = Broker(Session(RECONCILE_KEY), SQLiteStore(url), gateway_bind="tcp://127.0.0.1:*",
                    device_bind="tcp://127.0.0.1:*", publish_bind="tcp://127.0.0.1:*")
    broker.insecure = True
    await broker.start()
    ctx = zmq.Context()
    sock = BusSocket(ctx, zmq.DEALER)
    sock.linger = 0
    sock.routing_id = DEVICE.encode()
    try:
        sock.connect(broker.device_sock.getsockopt_string(zmq.LAST_ENDPOINT))
        broker.devices.heard(DEVICE, DEVICE.encode(), {"capacity": 4, "load": 0})
        await routable(broker)
        later = execute(broker, "c2")
        await broker.intake.execute(later, ("u", "w", "c2"))
        assert await executes(sock, 2) == [first["msg_id"], later["msg_id"]]
    finally:
        sock.close()
        ctx.term()
        await broker.stop()


async def test_a_lost_devices_running_request_the_store_cannot_end_does_not_hold_its_session(
        parts: Parts) -> None:
    """d1 is lost with s1's request running there, and the store fails the DeviceLost write
    (it stays working, ended by a later reconciliation): it is with no device any more, so
    s1's next request is placed on d2 at once, not held behind it for good."""
    first, d2 = await handed_to_d1(parts)
    try:
        await parts.store.update_request(first.msg_id, WORKING)
        parts.devices.devices["d1"].last_heard -= parts.devices.expiry + 1
        assert parts.devices.expired() == ["d1"]

        async def unwritable(*args: Any, **kwargs: Any) -> None:
            raise StoreError("disk full")

        lost = watch(parts)
        lost.outputs = cast(Any, SimpleNamespace(persist_and_publish=unwritable))
        await lost.lost("d1")
        later = await accept(parts, "s1", "d1")
        assert later.device == "d2"
        assert await received(d2, 1) == [later.msg_id]
    finally:
        d2.close()


async def test_a_request_a_restarted_device_no_longer_holds_goes_again_before_the_next(
        broker: Broker, device: BusSocket) -> None:
    """The device restarts with u/w's first request queued (its register lists nothing) and
    the session still counted as starting there; the worksheet's next request, accepted
    before the reconciliation has read the store, goes out after the first is sent again
    (before, it went straight out and the first came after it)."""
    await routable(broker)
    first = execute(broker, "c1")
    await broker.intake.execute(first, ("u", "w", "c1"))
    register = broker.session.msg(mt.DEVICE_REGISTER, {
        "capacity": 4, "load": 0, "sessions": [], "requests": []})
    broker._sort([DEVICE.encode()], register, [])  # noqa: SLF001 (what the device loop does)
    later = execute(broker, "c2")
    await broker.intake.execute(later, ("u", "w", "c2"))
    assert await executes(device, 3) == [first["msg_id"], first["msg_id"], later["msg_id"]]


class SlowSessions:
    """The store's ``sessions`` read held until :attr:`go_on` (:attr:`reading` once it is
    asked): a slow store, for the window of DeviceWatch.lost() while it reads."""

    def __init__(self, parts: Parts) -> None:
        self.read = parts.store.sessions
        self.reading, self.go_on = asyncio.Event(), asyncio.Event()

    async def __call__(self, *args: Any, **kwargs: Any) -> list[SessionRecord]:
        self.reading.set()
        await self.go_on.wait()  # the store answers once the device is back
        return await self.read(*args, **kwargs)


def lose_d1(parts: Parts, report: dict[str, Any]) -> None:
    """d1 heard with ``report``, then silent past the expiry."""
    parts.devices.heard("d1", b"d1", report)
    parts.devices.devices["d1"].last_heard -= parts.devices.expiry + 1
    assert parts.devices.expired() == ["d1"]


async def test_a_request_handed_out_after_a_lost_device_came_back_is_not_taken_back(
        parts: Parts) -> None:
    """d1 is taken for lost with s1's worker on it, and is heard again while the broker still
    reads the store for what it had (a slow store, the 23:47 valgrind run): it is told to end
    s1's worker, then s1's next requests are placed there and handed out behind that note,
    to a fresh worker. The rest of the loss must leave those hand-outs alone: before, it took
    the queued one back, dropped what the device says of it (revoked) and handed it out
    again, and the device ignored that copy of a request it had: it never ended (needs_work
    for good); and it ended the one already running with DeviceLost."""
    record = SessionRecord(session="s1", user="u", worksheet="w-s1", device="d1",
                           state=OPEN, created=1.0, last_activity=1.0)
    await parts.store.put_session(record)
    lose_d1(parts, {"capacity": 2, "load": 1, "sessions": ["s1"]})
    slow = SlowSessions(parts)
    ended: list[Any] = []

    async def end(out: list[Any]) -> None:
        ended.extend(out)

    lost = watch(parts)
    lost.outputs = cast(Any, SimpleNamespace(persist_and_publish=end))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parts.store, "sessions", slow)
        losing = asyncio.create_task(lost.lost("d1"))
        await asyncio.wait_for(slow.reading.wait(), 5)
        parts.devices.heard("d1", b"d1", {"capacity": 2, "load": 1, "sessions": ["s1"]})
        lost.came_back("d1")
        running = await accept(parts, "s1", "d1")
        await parts.store.update_request(running.msg_id, WORKING)
        later = await accept(parts, "s1", "d1")
        assert running.device == later.device == "d1"
        nonce = parts.dispatch.handed.nonce(later.msg_id)
        slow.go_on.set()
        await asyncio.wait_for(losing, 5)
    assert ended == []  # no DeviceLost for the one running
    assert later.msg_id not in lost.revoked  # what the device says of it is stored
    assert parts.dispatch.handed.nonce(later.msg_id) == nonce  # not handed out again
    closed, = await parts.received(1)
    assert closed["msg_type"] == mt.SESSION_CLOSED
    assert [m["msg_id"] for m in await parts.received(2)] == [running.msg_id, later.msg_id]
    await parts.nothing_more()
    assert [r.msg_id for r in await parts.store.requests(WORKING)] == [running.msg_id]


async def test_a_request_of_a_session_restarted_during_a_pass_is_not_handed_out(
        parts: Parts) -> None:
    """A pass has read s1's queued requests and is sending s0's when s1 is restarted
    (Control.end_worker ends s1's requests no device has with SessionRestarted): the pass
    hands none of s1's out. Before, it did, after they had ended, to the device that was
    told to end s1's worker."""
    parts.devices.heard("d1", b"d1", {"capacity": 2, "load": 0, "sessions": []})
    other = await parts.add("s0", device="d1")
    queued = [await parts.add("s1", device="d1", cell_id=c) for c in ("c1", "c2")]
    sending, go_on = asyncio.Event(), asyncio.Event()
    send = parts.dispatch.wire.send

    async def slow_send(sock: Any, message: Message, idents: Any) -> None:
        if message["msg_id"] == other.msg_id:
            sending.set()
            await go_on.wait()
        await send(sock, message, idents)

    ended: list[Any] = []

    async def end(out: list[Any]) -> None:
        ended.extend(out)

    lost = watch(parts)
    lost.outputs = cast(Any, SimpleNamespace(persist_and_publish=end))
    control = Control(wire=parts.wire, store=parts.store, sessions=parts.dispatch.sessions,
                      dispatch=parts.dispatch, watch=lost, store_writable=lambda: True,
                      log=log)
    record = await parts.store.get_session("s1")
    assert record is not None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parts.dispatch.wire, "send", slow_send)
        passing = asyncio.create_task(parts.dispatch.dispatch_pending())
        await asyncio.wait_for(sending.wait(), 5)
        await control.close(record, ("u", "w-s1", "c1"))
        go_on.set()
        await asyncio.wait_for(passing, 5)
    assert {m["parent_header"]["msg_id"] for _, m in ended} == {r.msg_id for r in queued}
    shutdown, sent = await parts.received(2)
    assert shutdown["msg_type"] == mt.SHUTDOWN_REQUEST
    assert sent["msg_id"] == other.msg_id
    await parts.nothing_more()

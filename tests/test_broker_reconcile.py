"""How the broker reconciles a device's report of the requests it holds (broker/devices.py).

A broker in this process, over a real SQLite store and real ZeroMQ sockets, with a real
DEALER as the device: the order of events that the whole chain produces only by chance (a
request handed out while the broker was still reading the store for a report that arrived
before it) is set here exactly, and so is the opposite order. So is how the broker ends a
request itself (DeviceLost) or settles one from its stored reply and idle.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from broker.node import Broker
from broker.store import (DONE, ERROR, NEEDS_WORK, WORKING, Request, SessionRecord,
                          sqlite_url)
from broker.store.sqlite import SQLiteStore
from protocol import msgtypes as mt
from protocol.requests import reply_type, stamp
from protocol.sockets import BusSocket
from protocol.wire import Message, Session

pytestmark = pytest.mark.timeout(30)

KEY = b"reconcile-test-key"
DEVICE = "d1"


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    node = Broker(Session(KEY), SQLiteStore(sqlite_url(tmp_path / "cellbus.db")),
                  gateway_bind="tcp://127.0.0.1:*", device_bind="tcp://127.0.0.1:*",
                  publish_bind="tcp://127.0.0.1:*")
    node.insecure = True  # one process on loopback; CURVE is tests/test_curve.py's subject
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


@pytest.fixture
async def device(broker: Broker) -> AsyncIterator[BusSocket]:
    ctx = zmq.Context()
    sock = BusSocket(ctx, zmq.DEALER)
    sock.linger = 0
    sock.routing_id = DEVICE.encode()
    sock.connect(broker.device_sock.getsockopt_string(zmq.LAST_ENDPOINT))
    broker.devices.heard(DEVICE, DEVICE.encode(), {"capacity": 4, "load": 0})
    try:
        yield sock
    finally:
        sock.close()
        ctx.term()


async def store_request(broker: Broker, msg_type: str = mt.EXECUTE_REQUEST) -> Request:
    """A request of session s1 stored and placed on DEVICE: ``print(2)``, or a run of the
    interact i1 if ``msg_type`` is interact_request."""
    record = SessionRecord(session="s1", user="u", worksheet="w", device=DEVICE, state="open",
                           created=1.0, last_activity=1.0)
    interact = msg_type == mt.INTERACT_REQUEST
    content = {"interact_id": "i1", "values": {"n": 2}, "state": 1} if interact else {
        "code": "print(2)"}
    message = broker.session.msg(msg_type, content, metadata={
        "cellbus": {"user": "u", "worksheet": "w", "cell_id": "c1", "session": "s1"}})
    return await broker.store.add_session_request(record, Request(
        msg_id=message["msg_id"], session="s1", user="u", worksheet="w", cell_id="c1",
        msg_type=msg_type, input="" if interact else "print(2)", message=message,
        device=DEVICE, interact_id="i1" if interact else None, state=1 if interact else None))


async def hand_out(broker: Broker, request: Request) -> None:
    """Send ``request`` to the device once the device's connection is routable."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not await broker.send_to_device(request):
        assert loop.time() < deadline, "the device never became routable"
        await asyncio.sleep(0.01)


async def requests_until_marker(broker: Broker, device: BusSocket) -> list[str]:
    """The msg_ids of the requests the device got until a marker the broker sends now: every
    message the broker sent before the marker has arrived by then (one pipe keeps order)."""
    marker = broker.session.msg(mt.BROKER_HEARTBEAT, {})
    broker.dispatch.post(DEVICE.encode(), marker)
    got: list[str] = []
    while True:
        frames = await asyncio.wait_for(device.recv_frames(), 10)
        _, msg = Session(KEY).deserialize(frames)  # a fresh Session: a copy is no replay here
        if msg["msg_id"] == marker["msg_id"]:
            return got
        if msg["msg_type"] == mt.EXECUTE_REQUEST:
            got.append(msg["msg_id"])


def report(request: Message | None = None) -> dict[str, object]:
    return {"capacity": 4, "load": 0, "requests": [request["msg_id"]] if request else []}


async def test_a_request_handed_out_after_the_report_arrived_is_not_sent_again(
        broker: Broker, device: BusSocket) -> None:
    mark = broker.sent.mark()  # the report arrives; the store is read after the hand-out
    request = await store_request(broker)
    await hand_out(broker, request)
    await broker.watch.joined(DEVICE, report(), mark)
    assert request.msg_id in broker.sent
    assert await requests_until_marker(broker, device) == [request.msg_id]


async def test_a_request_handed_out_before_a_report_that_lacks_it_is_sent_again(
        broker: Broker, device: BusSocket) -> None:
    request = await store_request(broker)
    await hand_out(broker, request)
    mark = broker.sent.mark()  # the device restarted: its report does not list the request
    await broker.watch.joined(DEVICE, report(), mark)
    assert request.msg_id in broker.sent
    assert await requests_until_marker(broker, device) == [request.msg_id] * 2


async def test_a_listed_request_is_left_to_the_device(broker: Broker, device: BusSocket) -> None:
    request = await store_request(broker)
    await hand_out(broker, request)
    mark = broker.sent.mark()
    await broker.watch.joined(DEVICE, report(request.message), mark)
    assert await requests_until_marker(broker, device) == [request.msg_id]


@pytest.mark.parametrize("handed", ["before", "after"])
async def test_a_running_request_ends_only_if_handed_out_before_the_report(
        broker: Broker, device: BusSocket, handed: str) -> None:
    request = await store_request(broker)
    mark = broker.sent.mark()
    await hand_out(broker, request)
    if handed == "before":
        mark = broker.sent.mark()
    await broker.store.update_request(request.msg_id, WORKING)  # its busy status came in
    await broker.watch.joined(DEVICE, report(), mark)
    stored = await broker.store.get_request(request.msg_id)
    assert stored is not None
    if handed == "after":
        assert stored.status == WORKING
    else:
        assert stored.status == ERROR and "restarted" in (stored.error or "")
    assert stored.status != NEEDS_WORK


@pytest.mark.parametrize("msg_type", [mt.EXECUTE_REQUEST, mt.INTERACT_REQUEST])
async def test_a_request_the_broker_ends_gets_its_own_reply_type_and_ends(
        broker: Broker, msg_type: str) -> None:
    """DeviceLost for an interact run is answered with an interact_reply (as a device
    answers one whose worker died), stamped for the request's session and device, and it
    ends the request in the store (protocol.requests: failed, Endings)."""
    request = await store_request(broker, msg_type)
    request = await broker.store.update_request(request.msg_id, WORKING)
    await broker.watch.fail(request, "the device stopped answering; run the cell again")
    stored = [m for _, m in await broker.store.messages("s1", parent=request.msg_id)]
    assert [m["msg_type"] for m in stored] == [mt.ERROR, reply_type(msg_type), mt.STATUS]
    for m in stored:
        assert m["header"]["session"] == "s1"
        assert m["metadata"]["cellbus"]["device"] == DEVICE
        assert m["metadata"]["cellbus"]["cell_id"] == "c1"
    assert stored[1]["content"]["ename"] == "DeviceLost"
    ended = await broker.store.get_request(request.msg_id)
    assert ended is not None and ended.status == ERROR
    assert ended.error == "DeviceLost: the device stopped answering; run the cell again"
    assert len(broker.replied) == 0  # nothing is followed any more


async def test_a_request_whose_reply_and_idle_are_stored_is_settled_as_its_reply_says(
        broker: Broker) -> None:
    """The store holds the run's reply and idle but not its end (a broker died between
    the two writes): the broker settles it done instead of failing it."""
    request = await store_request(broker, mt.INTERACT_REQUEST)
    request = await broker.store.update_request(request.msg_id, WORKING)
    await broker.store.append_messages([("s1", stamp(
        broker.session, request.message, msg_type, content, session="s1", device=DEVICE))
        for msg_type, content in ((mt.INTERACT_REPLY, {"status": "ok"}),
                                  (mt.STATUS, {"execution_state": "idle"}))])
    assert await broker.watch.settle(request)
    settled = await broker.store.get_request(request.msg_id)
    assert settled is not None and settled.status == DONE
    await broker.watch.fail(request, "too late")  # settled already: no second ending
    assert len(await broker.store.messages("s1", parent=request.msg_id)) == 2



def heard(request: Message | None = None, *, upto: str | None = None) -> dict[str, object]:
    """A report of this version: :func:`report`, with the token it had read (``upto``)."""
    return {**report(request), "heard": upto}


async def reconcile(broker: Broker, content: dict[str, object]) -> None:
    """Reconcile ``content`` as the broker does a report that arrives now."""
    upto = broker.sent.upto(content)
    broker.watch.rejoined(DEVICE, content, upto)
    await broker.watch.joined(DEVICE, content, upto)


async def send_report(broker: Broker, device: BusSocket, msg_type: str,
                      content: dict[str, object]) -> None:
    """Send a report from the device and wait until the broker has reconciled it."""
    done = asyncio.Event()
    reconciled = broker._device_joined

    async def joined(*args: Any) -> None:
        await reconciled(*args)
        done.set()

    broker._device_joined = joined  # type: ignore[method-assign]
    try:
        await device.send_frames(broker.session.serialize(broker.session.msg(
            msg_type, content, metadata={"cellbus": {"device": DEVICE}})))
        await asyncio.wait_for(done.wait(), 10)
    finally:
        broker._device_joined = reconciled  # type: ignore[method-assign]


@pytest.mark.parametrize("kind", [mt.DEVICE_REGISTER, mt.DEVICE_HEARTBEAT])
async def test_a_report_built_before_a_hand_out_reached_the_device_leaves_it_running(
        broker: Broker, device: BusSocket, kind: str) -> None:
    """A device reads a hand-out only after it built its register (it registers again as it
    hears the broker again, and that first message was the hand-out), or the heartbeat the
    broker reconciles because the device was heard before it was reconciled (``unsynced``),
    which arrives after the hand-out and does not list it: the running request is left, in
    doubt, and its session's later requests wait until a report that read past it lists it.
    The broker ended it with a false DeviceLost ("the device restarted and no longer runs
    this cell")."""
    if kind == mt.DEVICE_HEARTBEAT:
        broker.unsynced.add(DEVICE)  # its output came in before it was reconciled
    request = await store_request(broker)
    await hand_out(broker, request)
    await broker.store.update_request(request.msg_id, WORKING)  # its busy status came in
    register = heard(upto=f"{broker.dispatch.epoch}:0")  # built before it read the hand-out
    await send_report(broker, device, kind, register)
    stored = await broker.store.get_request(request.msg_id)
    assert stored is not None and stored.status == WORKING, stored
    assert request.msg_id in broker.sent and broker.dispatch.stranded("s1")
    await send_report(broker, device, mt.DEVICE_HEARTBEAT,
                      heard(request.message, upto=broker.sent.token()))
    assert not broker.dispatch.stranded("s1")
    stored = await broker.store.get_request(request.msg_id)
    assert stored is not None and stored.status == WORKING, stored
    assert await requests_until_marker(broker, device) == [request.msg_id]


@pytest.mark.parametrize("status", [NEEDS_WORK, WORKING])
async def test_a_hand_out_in_doubt_is_reconciled_by_a_report_that_read_past_it(
        broker: Broker, device: BusSocket, status: str) -> None:
    """A device that read none of this broker's messages when it built its report (a new
    process, or one of a previous broker's: ``heard`` None or of another broker) leaves the
    hand-outs in doubt; its next report that read past them and does not list them takes a
    queued one back (sent again) and ends a running one with DeviceLost."""
    request = await store_request(broker)
    await hand_out(broker, request)
    if status == WORKING:
        await broker.store.update_request(request.msg_id, WORKING)
    for token in (None, "abcdef:7"):
        await reconcile(broker, heard(upto=token))
        stored = await broker.store.get_request(request.msg_id)
        assert stored is not None and stored.status == status
        assert request.msg_id in broker.sent and broker.dispatch.stranded("s1")
    assert broker.sent.doubtful(DEVICE, broker.sent.upto(heard(upto=broker.sent.token())))
    await reconcile(broker, heard(upto=broker.sent.token()))
    stored = await broker.store.get_request(request.msg_id)
    assert stored is not None
    if status == WORKING:
        assert stored.status == ERROR and "restarted" in (stored.error or "")
        assert await requests_until_marker(broker, device) == [request.msg_id]
    else:
        assert stored.status == NEEDS_WORK and not broker.dispatch.stranded("s1")
        assert await requests_until_marker(broker, device) == [request.msg_id] * 2

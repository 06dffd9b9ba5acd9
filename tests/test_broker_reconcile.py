"""How the broker reconciles a device's report of the requests it holds (broker/devices.py).

A broker in this process, over a real SQLite store and real ZeroMQ sockets, with a real
DEALER as the device: the order of events that the whole chain produces only by chance (a
request handed out while the broker was still reading the store for a report that arrived
before it) is set here exactly, and so is the opposite order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zmq

from broker.node import Broker
from broker.store import ERROR, NEEDS_WORK, WORKING, Request, SessionRecord, sqlite_url
from broker.store.sqlite import SQLiteStore
from protocol import msgtypes as mt
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


async def store_request(broker: Broker) -> Request:
    record = SessionRecord(session="s1", user="u", worksheet="w", device=DEVICE, state="open",
                           created=1.0, last_activity=1.0)
    message = broker.session.msg(mt.EXECUTE_REQUEST, {"code": "print(2)"}, metadata={
        "cellbus": {"user": "u", "worksheet": "w", "cell_id": "c1", "session": "s1"}})
    return await broker.store.add_session_request(record, Request(
        msg_id=message["msg_id"], session="s1", user="u", worksheet="w", cell_id="c1",
        msg_type=mt.EXECUTE_REQUEST, input="print(2)", message=message, device=DEVICE))


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
    broker.device_sock.send_now(broker.session.serialize(marker, [DEVICE.encode()]))
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

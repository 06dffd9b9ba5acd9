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
from types import SimpleNamespace
from typing import Any, cast

import pytest
import zmq

from broker.devices import DeviceWatch
from broker.store import Request
from protocol import msgtypes as mt
from protocol.sockets import BusSocket
from protocol.wire import Session
from test_broker_inprocess import KEY, Parts, log, parts  # noqa: F401 (a fixture)

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

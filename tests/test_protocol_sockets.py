"""BusSocket: awaited whole-message I/O on the node's loop, over real ZeroMQ sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq

from protocol.sockets import BusSocket


@pytest.fixture
def make() -> Iterator[Callable[[int], BusSocket]]:
    """Makes BusSockets (linger 0) of one context; closes them and the context after."""
    ctx = zmq.Context()
    made: list[BusSocket] = []

    def make(kind: int) -> BusSocket:
        sock = BusSocket(ctx, kind)
        sock.linger = 0
        made.append(sock)
        return sock

    yield make
    for sock in made:
        sock.close()
    ctx.term()


@pytest.fixture
def pair(make: Callable[[int], BusSocket], tmp_path: Path) -> tuple[BusSocket, BusSocket]:
    """Two connected sockets over ipc: between processes, as on the bus (inproc signals
    differently)."""
    a, b = make(zmq.PAIR), make(zmq.PAIR)
    b.bind(f"ipc://{tmp_path}/pair")
    a.connect(f"ipc://{tmp_path}/pair")
    return a, b


async def test_a_waiting_receiver_gets_the_next_message(pair: tuple[BusSocket, BusSocket]) -> None:
    a, b = pair
    waiting = asyncio.ensure_future(b.recv_frames())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await a.send_frames([b"one", b"two"])
    assert await asyncio.wait_for(waiting, 5) == [b"one", b"two"]


async def test_receivers_are_served_in_the_order_they_came(
        pair: tuple[BusSocket, BusSocket]) -> None:
    a, b = pair
    first, second = asyncio.ensure_future(b.recv_frames()), asyncio.ensure_future(b.recv_frames())
    await asyncio.sleep(0.01)
    assert b.recv_now() is None  # a later caller does not overtake the ones waiting
    for word in (b"1", b"2"):
        assert a.send_now([word])
    assert await asyncio.wait_for(asyncio.gather(first, second), 5) == [[b"1"], [b"2"]]


async def test_a_cancelled_receiver_takes_nothing(pair: tuple[BusSocket, BusSocket]) -> None:
    a, b = pair
    gone = asyncio.ensure_future(b.recv_frames())
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    await a.send_frames([b"kept"])
    assert await asyncio.wait_for(b.recv_frames(), 5) == [b"kept"]


async def test_a_cancelled_sender_sends_nothing(make: Callable[[int], BusSocket],
                                                tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/later"
    a = make(zmq.DEALER)
    a.immediate = True
    a.connect(endpoint)
    assert not a.send_now([b"x"])  # no peer: it would block
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(a.send_frames([b"dropped"]), 0.05)
    b = make(zmq.DEALER)
    b.bind(endpoint)
    await asyncio.wait_for(a.send_frames([b"after"]), 5)
    assert await asyncio.wait_for(b.recv_frames(), 5) == [b"after"]


async def test_an_unroutable_identity_raises_at_once(make: Callable[[int], BusSocket]) -> None:
    router = make(zmq.ROUTER)
    router.router_mandatory = True
    router.bind("inproc://router")
    with pytest.raises(zmq.ZMQError):
        router.send_now([b"no-such-peer", b"x"])


async def test_closing_fails_whoever_still_waits(make: Callable[[int], BusSocket]) -> None:
    sock = make(zmq.PAIR)
    sock.bind("inproc://closing")
    waiting = asyncio.ensure_future(sock.recv_frames())
    await asyncio.sleep(0.01)
    sock.close()
    with pytest.raises(zmq.ZMQError):
        await asyncio.wait_for(waiting, 5)


async def test_unread_messages_do_not_spin_the_loop(pair: tuple[BusSocket, BusSocket]) -> None:
    """Messages that arrive while nobody reads must not keep the descriptor firing: the
    loop stays idle (a busy loop here would burn a core in every node)."""
    a, b = pair
    waiting = asyncio.ensure_future(b.recv_frames())  # makes b watch its descriptor
    await a.send_frames([b"first"])
    assert await asyncio.wait_for(waiting, 5) == [b"first"]
    assert b.recv_now() is None  # finds the queue empty: libzmq signals the next arrival
    for i in range(10):
        await a.send_frames([b"%d" % i])
    cpu = time.process_time()
    await asyncio.sleep(0.3)
    assert time.process_time() - cpu < 0.1
    assert [await b.recv_frames() for _ in range(10)] == [[b"%d" % i] for i in range(10)]

"""Many WebSocket clients through a node's death at once (a thundering herd): every client
following a running cell when the broker is SIGKILLed and restarted (each subscription then
catches up from the new broker's store at once), or when the gateway is SIGKILLed and
restarted (every client reconnects at once, resuming from the last seq it saw). Each client
ends with every line of its cell once, in order, each seq once, and the nodes serve on."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import pytest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from harness import Chain
from test_chain_ws import close, send

pytestmark = pytest.mark.timeout(180)

CLIENTS = 12
LINES = 40
CODE = (f"import time\nfor i in range({LINES}):\n    print('line', i, flush=True)\n"
        "    time.sleep(0.1)\n")


class Follower:
    """One client: its own user's worksheet, one cell, and everything it was sent."""

    def __init__(self, chain: Chain, n: int) -> None:
        self.chain, self.user = chain, f"herd{n}"
        self.ws: WebSocketClientConnection | None = None
        self.got: list[dict[str, Any]] = []

    async def connect(self) -> None:
        self.ws = await websocket_connect(f"ws://127.0.0.1:{self.chain.port}/ws")

    def last(self) -> tuple[int, str | None]:
        facts = [m["metadata"]["cellbus"] for m in self.got
                 if "seq" in m["metadata"].get("cellbus", {})]
        return (facts[-1]["seq"], facts[-1]["session"]) if facts else (0, None)

    async def subscribe(self) -> None:
        assert self.ws is not None
        since, session = self.last()
        content: dict[str, Any] = {"user": self.user, "worksheet": "w", "since": since}
        if session is not None:
            content["session"] = session
        await send(self.ws, "subscribe_request", content)

    async def start(self) -> None:
        await self.connect()
        await self.subscribe()
        assert self.ws is not None
        await send(self.ws, "execute_request", {"code": CODE}, user=self.user, worksheet="w",
                   cell_id="c1")

    async def read_until(self, predicate: Any, timeout: float = 90) -> bool:
        """Read until ``predicate(msg)``; False if the socket closed first."""
        assert self.ws is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.ws.read_message()
                if raw is None:
                    return False
                msg = json.loads(raw)
                self.got.append(msg)
                if predicate(msg):
                    return True

    def lines(self) -> list[str]:
        return "".join(m["content"]["text"] for m in self.got
                       if m["msg_type"] == "stream").splitlines()

    def check(self) -> None:
        seqs = [m["metadata"]["cellbus"]["seq"] for m in self.got
                if "seq" in m["metadata"].get("cellbus", {})]
        assert seqs == sorted(set(seqs)), (self.user, seqs)  # each once, in order
        assert self.lines() == [f"line {i}" for i in range(LINES)], (self.user, self.lines())


def is_reply(msg: dict[str, Any]) -> bool:
    return msg["msg_type"] == "execute_reply"


def printed(f: Follower, n: int) -> Any:
    """Whether ``f`` has line ``n`` whole (a line may come in pieces)."""
    return lambda m: m["msg_type"] == "stream" and f"line {n}" in f.lines()


async def herd(chain: Chain) -> list[Follower]:
    chain.start_broker()
    chain.start_device("--max-sessions", str(CLIENTS + 2), "--prefork", "4")
    chain.start_gateway()
    followers = [Follower(chain, n) for n in range(CLIENTS)]
    await asyncio.gather(*(f.start() for f in followers))
    assert all(await asyncio.gather(*(f.read_until(printed(f, 3)) for f in followers)))
    return followers


@pytest.mark.parametrize("round_", range(2))
async def test_every_follower_of_a_running_cell_catches_up_after_a_broker_kill(
        chain: Chain, round_: int) -> None:
    """Tests that each of many clients following a cell through a broker SIGKILL gets the
    cell's every line once, when all their subscriptions catch up from the new broker at
    once."""
    followers = await herd(chain)
    assert chain.broker is not None
    await asyncio.to_thread(chain.broker.stop, signal.SIGKILL)
    await asyncio.to_thread(chain.start_broker)
    assert all(await asyncio.gather(*(f.read_until(is_reply) for f in followers)))
    for f in followers:
        f.check()
        assert f.ws is not None
        await close(f.ws)


@pytest.mark.parametrize("round_", range(2))
async def test_every_client_reconnecting_at_once_to_a_restarted_gateway_resumes_whole(
        chain: Chain, round_: int) -> None:
    """Tests that many clients whose gateway was SIGKILLed mid-stream, reconnecting all at
    once to the restarted one with the last seq each saw, end with every line once."""
    followers = await herd(chain)
    assert chain.gateway is not None
    await asyncio.to_thread(chain.gateway.stop, signal.SIGKILL)
    assert not any(await asyncio.gather(*(f.read_until(lambda m: False, timeout=10)
                                          for f in followers)))  # every socket closed
    await asyncio.to_thread(chain.start_gateway)

    async def again(f: Follower) -> bool:
        assert f.ws is not None
        f.ws.close()  # closed by the gateway's death: let go of it
        await f.connect()
        await f.subscribe()
        return await f.read_until(is_reply)

    assert all(await asyncio.gather(*(again(f) for f in followers)))
    for f in followers:
        f.check()
        assert f.ws is not None
        await close(f.ws)

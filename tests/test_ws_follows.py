"""One user cannot make the gateway hold subscriptions without bound.

A ``subscribe_request`` for any worksheet name the user may use (any name of their own)
costs the gateway a subscription until the socket closes; one socket made 20,000 in 10 s
(+38 MB), with no end. Now a user follows at most ``MAX_FOLLOWED`` worksheets over all their
sockets together (429 past it), a closed socket frees its share, and other users are not
affected. Real broker, device and gateway (``--auth token``); tornado's WebSocket client.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from access_util import add_user, bearer
from gateway.follows import MAX_FOLLOWED
from harness import Chain

pytestmark = pytest.mark.timeout(120)


async def connect(chain: Chain, token: str) -> WebSocketClientConnection:
    return await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{chain.port}/ws",
                                               headers=bearer(token)))


async def close(*sockets: WebSocketClientConnection) -> None:
    """Close and wait for the gateway's close (no socket left for the garbage collector)."""
    for ws in sockets:
        if ws.protocol is None:
            continue  # closed here already
        ws.close()
        async with asyncio.timeout(10):
            while await ws.read_message() is not None:
                pass


async def subscribe(ws: WebSocketClientConnection, user: str, names: list[str]
                    ) -> list[dict[str, Any]]:
    """Subscribe to each of ``names`` at once; their replies' contents, in order."""
    ids = []
    for n, name in enumerate(names):
        ids.append(f"sub-{n}-{name}")
        ws.write_message(json.dumps({
            "header": {"msg_type": "subscribe_request", "msg_id": ids[-1]},
            "content": {"user": user, "worksheet": name, "since": 0}}))
    replies: dict[str, dict[str, Any]] = {}
    while len(replies) < len(ids):
        raw = await asyncio.wait_for(ws.read_message(), 60)
        assert isinstance(raw, str), "the socket closed"
        msg = json.loads(raw)
        if msg["msg_type"] in ("subscribe_reply", "error_reply"):
            replies[msg["parent_header"]["msg_id"]] = msg["content"]
    return [replies[i] for i in ids]


async def test_a_user_follows_a_bounded_number_of_worksheets(chain: Chain) -> None:
    tokens = {"alice": add_user(chain, "alice"), "bob": add_user(chain, "bob")}
    chain.start_broker()
    chain.start_device()
    chain.start_gateway("--auth", "token")
    first, second = await connect(chain, tokens["alice"]), await connect(chain, tokens["alice"])
    bob = await connect(chain, tokens["bob"])
    try:
        half = MAX_FOLLOWED // 2
        got = await subscribe(first, "alice", [f"a{n}" for n in range(half)])
        got += await subscribe(second, "alice", [f"b{n}" for n in range(MAX_FOLLOWED - half)])
        assert all(r["ok"] for r in got)
        over = await subscribe(second, "alice", ["one-more", "b0"])  # b0: followed already
        assert over[0]["ok"] is False and over[0]["http_status"] == 429, over[0]
        assert "too many subscriptions" in over[0]["error"]
        assert over[1]["ok"] is True
        assert (await subscribe(bob, "bob", ["mine"]))[0]["ok"] is True  # others unaffected
        await close(first)
        for _ in range(100):  # the gateway frees the share once it sees the close
            if (await subscribe(second, "alice", ["one-more"]))[0]["ok"]:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("a closed socket's subscriptions were never freed")
    finally:
        await close(first, second, bob)


async def test_an_anonymous_socket_follows_a_bounded_number_on_its_own(chain: Chain) -> None:
    """Without auth every visitor behind one proxy shares an address: the bound is then each
    socket's own (how many sockets an address may open is --max-per-address)."""
    chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    url = f"ws://127.0.0.1:{chain.port}/ws"
    first, second = await websocket_connect(url), await websocket_connect(url)
    try:
        got = await subscribe(first, "anyone", [f"w{n}" for n in range(MAX_FOLLOWED + 1)])
        assert all(r["ok"] for r in got[:-1]) and got[-1]["http_status"] == 429
        assert (await subscribe(second, "anyone", ["w0"]))[0]["ok"] is True
    finally:
        await close(first, second)

"""The WebSocket API over the whole chain: streaming, resume without gaps or duplicates."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tornado.websocket import WebSocketClientConnection, websocket_connect


@pytest.fixture
async def connect():
    """Open sockets to a chain's gateway; each is closed, handshake and all, after the test."""
    opened: list[WebSocketClientConnection] = []

    async def open_socket(chain) -> WebSocketClientConnection:
        ws = await websocket_connect(f"ws://127.0.0.1:{chain.port}/ws")
        opened.append(ws)
        return ws

    yield open_socket
    for ws in opened:
        await close(ws)


async def close(ws: WebSocketClientConnection) -> None:
    if ws.protocol is None:  # already closed
        return
    ws.close()
    async with asyncio.timeout(5):
        while await ws.read_message() is not None:
            pass


async def send(ws: WebSocketClientConnection, msg_type: str, content: dict[str, Any],
               **cellbus: str) -> None:
    await ws.write_message(json.dumps({"header": {"msg_type": msg_type}, "content": content,
                                       "metadata": {"cellbus": cellbus}}))


async def read_until(ws: WebSocketClientConnection, predicate, timeout: float = 20) -> list[dict]:
    got: list[dict] = []
    async with asyncio.timeout(timeout):
        while True:
            raw = await ws.read_message()
            assert raw is not None, f"socket closed after {[m['msg_type'] for m in got]}"
            msg = json.loads(raw)
            got.append(msg)
            if predicate(msg):
                return got


def is_reply(msg: dict) -> bool:
    return msg["msg_type"] == "execute_reply"


def seqs(msgs: list[dict]) -> list[int]:
    return [m["metadata"]["cellbus"]["seq"] for m in msgs
            if "seq" in m["metadata"].get("cellbus", {})]


async def test_execute_and_stream_over_a_websocket(shared_chain, connect) -> None:
    ws = await connect(shared_chain)
    await send(ws, "subscribe_request", {"user": "u", "worksheet": "w", "since": 0})
    reply = (await read_until(ws, lambda m: m["msg_type"] == "subscribe_reply"))[-1]
    assert reply["content"]["ok"] and reply["content"]["seq"] == 0
    await send(ws, "execute_request", {"code": "import time\nprint(1, flush=True)\n"
                                               "time.sleep(1)\nprint(2)"},
               user="u", worksheet="w", cell_id="c1")
    msgs = await read_until(ws, is_reply)
    accepted = [m for m in msgs if m["msg_type"] == "request_accepted"][0]
    assert accepted["content"]["ok"] and accepted["content"]["status"] == "needs_work"
    texts = [m["content"]["text"] for m in msgs if m["msg_type"] == "stream"]
    assert texts == ["1\n", "2\n"]
    assert seqs(msgs) == list(range(1, len(seqs(msgs)) + 1))


async def test_request_sent_with_the_subscription_gets_history_then_output(
        shared_chain, connect) -> None:
    """What cellbus.js does on a new page: subscribe and execute back to back. The gateway
    sends the execute on while the replay runs; every output comes once, in seq order: the
    worksheet's history first, then the new run. ``request_accepted`` may come before or
    after the run's output (the module docstring of gateway/ws.py says why): wait for both."""
    ws = await connect(shared_chain)
    await send(ws, "subscribe_request", {"user": "u", "worksheet": "p", "since": 0})
    await read_until(ws, lambda m: m["msg_type"] == "subscribe_reply")
    await send(ws, "execute_request", {"code": "for i in range(300): print(i)"},
               user="u", worksheet="p", cell_id="c1")
    history = await read_until(ws, lambda m: m["msg_type"] == "status"
                               and m["content"]["execution_state"] == "idle")
    await close(ws)

    ws = await connect(shared_chain)
    await send(ws, "subscribe_request", {"user": "u", "worksheet": "p", "since": 0})
    await send(ws, "execute_request", {"code": "print('again')"}, user="u", worksheet="p",
               cell_id="c2")
    seen: set[str] = set()

    def accepted_and_idle(m: dict) -> bool:
        if m["msg_type"] == "request_accepted":
            seen.add("accepted")
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle" and m[
                "parent_header"]["msg_id"] != history[-1]["parent_header"]["msg_id"]:
            seen.add("idle")
        return seen == {"accepted", "idle"}

    got = await read_until(ws, accepted_and_idle)
    kinds = [m["msg_type"] for m in got]
    assert got[kinds.index("subscribe_reply")]["content"]["ok"]
    assert got[kinds.index("request_accepted")]["content"]["ok"]
    assert seqs(got) == list(range(1, len(seqs(got)) + 1))
    assert seqs(got)[:len(seqs(history))] == seqs(history)
    assert [m["content"]["text"] for m in got if m["msg_type"] == "stream"][-1] == "again\n"


async def test_resume_after_a_dropped_socket_has_no_gaps_or_duplicates(shared_chain,
                                                                     connect) -> None:
    """The socket drops mid-run; a new one resumes from the last seq seen and gets the rest,
    each message exactly once."""
    chain = shared_chain
    ws = await connect(chain)
    await send(ws, "subscribe_request", {"user": "resume", "worksheet": "w", "since": 0})
    await send(ws, "execute_request", {"code": "import time\nfor i in range(8):\n"
                                               "    print(i, flush=True)\n    time.sleep(0.25)"},
               user="resume", worksheet="w", cell_id="c1")
    first = await read_until(ws, lambda m: m["msg_type"] == "stream"
                             and m["content"]["text"] == "2\n")
    await close(ws)
    seen = seqs(first)
    session = [m for m in first if "seq" in m["metadata"].get("cellbus", {})][0][
        "metadata"]["cellbus"]["session"]
    await asyncio.sleep(0.8)  # output goes on while nobody listens
    ws = await connect(chain)
    await send(ws, "subscribe_request", {"user": "resume", "worksheet": "w", "since": seen[-1],
                                         "session": session})
    rest = await read_until(ws, is_reply)
    assert seqs(first + rest) == list(range(1, len(seqs(first + rest)) + 1))
    text = "".join(m["content"]["text"] for m in first + rest if m["msg_type"] == "stream")
    assert text == "".join(f"{i}\n" for i in range(8))


async def test_bad_websocket_messages_get_clear_errors(shared_chain, connect) -> None:
    ws = await connect(shared_chain)
    await ws.write_message("not json")
    bad_json = json.loads(await ws.read_message())
    assert bad_json["content"]["http_status"] == 400
    await send(ws, "execute_request", {"code": "1"})  # no cell address
    no_cell = json.loads(await ws.read_message())
    assert not no_cell["content"]["ok"] and "user" in no_cell["content"]["error"]
    await send(ws, "nonsense_request", {})
    unknown = json.loads(await ws.read_message())
    assert "unknown msg_type" in unknown["content"]["error"]
    await send(ws, "execute_request", {"code": "print('fine')"}, user="bad", worksheet="w",
               cell_id="1")
    assert json.loads(await ws.read_message())["content"]["ok"]


"""``--max-input`` over the WebSocket APIs, as over HTTP.

The gateway took any code that fit in one WebSocket message (``--max-input`` + 64 KiB), so a
cell HTTP's evaluate refused with 413 ran when the page sent it; and code at the limit whose
JSON needs escapes (a quote or a newline is two bytes) did not fit, so tornado closed the
socket with 1009 instead of answering. Now code over the limit gets the 413 of HTTP's words on
every way in (the page's socket, a completion, a Jupyter client's execute), code at the limit
always fits in a message, and ``subscribe_reply`` tells a client both limits.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tornado.websocket import websocket_connect

from harness import Chain
from jupyter_ws import Channels
from module_chain import module_chain
from raw_ws import RawSocket

#: The gateway's --max-input here.
LIMIT = 64 * 1024
#: Code one byte over the limit whose JSON is twice its size: every quote is escaped.
OVER = "#" + '"' * LIMIT
#: Code one byte over the limit that JSON carries as it is.
PLAIN_OVER = "#" + "x" * LIMIT
#: Code exactly at the limit, escaped the same way.
AT = "#" + '"' * (LIMIT - 1)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """A chain whose gateway takes at most :data:`LIMIT` bytes of code."""
    yield from module_chain(tmp_path_factory, __name__, gateway=("--max-input", str(LIMIT)))


async def ask(chain: Chain, msg_type: str, content: dict[str, Any],
              worksheet: str) -> dict[str, Any] | None:
    """Send one request for cell 1 of ``worksheet`` on a fresh socket: its reply (the first
    message: the socket subscribes to nothing), or None if the gateway closed the socket."""
    ws = await websocket_connect(f"ws://127.0.0.1:{chain.port}/ws")
    try:
        await ws.write_message(json.dumps({
            "header": {"msg_type": msg_type}, "content": content,
            "metadata": {"cellbus": {"user": "guest", "worksheet": worksheet, "cell_id": "1"}}}))
        raw = await asyncio.wait_for(ws.read_message(), 20)
        return None if raw is None else json.loads(raw)
    finally:
        ws.close()


def refusal(reply: dict[str, Any] | None) -> tuple[int, str]:
    assert reply is not None, "the gateway closed the socket instead of answering"
    assert reply["content"]["ok"] is False, reply["content"]
    return reply["content"]["http_status"], reply["content"]["error"]


async def test_code_over_the_limit_is_refused_as_over_http(small: Chain) -> None:
    """Tests that code one byte over --max-input gets HTTP's 413 and its words from the
    page's socket (an execute, a completion) and from a Jupyter client's execute; before, the
    page's execute was accepted and ran."""
    status, body = small.evaluate(f"guest/w-{uuid.uuid4().hex[:8]}/1", OVER)
    assert status == 413 and body == {"error": f"input is over the limit of {LIMIT} bytes"}
    worksheet = f"w-{uuid.uuid4().hex[:8]}"
    for code in (PLAIN_OVER, OVER):
        execute = await ask(small, "execute_request", {"code": code}, worksheet)
        assert refusal(execute) == (413, body["error"])
    complete = await ask(small, "complete_request", {"code": OVER, "cursor_pos": 1}, worksheet)
    assert refusal(complete) == (413, body["error"])

    kernel_status, kernel = small.http("POST", "/api/kernels", b'{"name": "python"}')
    assert kernel_status == 201, kernel
    channels = await Channels.open(small.port, kernel["id"])
    try:
        request = await channels.send("execute_request", {"code": OVER, "silent": False})
        got = await channels.until(lambda m: m["msg_type"] == "execute_reply")
        reply = got[-1]
        assert reply["parent_header"]["msg_id"] == request["header"]["msg_id"]
        assert reply["content"]["status"] == "error"
        assert reply["content"]["evalue"] == body["error"]
    finally:
        await channels.close()


async def test_code_at_the_limit_fits_in_one_message(small: Chain) -> None:
    """Tests that code at --max-input, twice as long in JSON, is accepted, not cut off with
    1009 (the largest message was the limit + 64 KiB); that subscribe_reply says both
    limits; and that a message past the largest is still closed with 1009, which the page
    takes as a refusal of that message."""
    worksheet = f"w-{uuid.uuid4().hex[:8]}"
    accepted = await ask(small, "execute_request", {"code": AT}, worksheet)
    assert accepted is not None, "closed (1009) instead of answered"
    assert accepted["content"]["ok"] is True, accepted["content"]
    fresh = f"w-{uuid.uuid4().hex[:8]}"  # no output to replay before the reply
    subscribed = await ask(small, "subscribe_request",
                           {"user": "guest", "worksheet": fresh, "since": 0}, fresh)
    assert subscribed is not None and subscribed["msg_type"] == "subscribe_reply"
    largest = subscribed["content"]["max_message"]
    assert subscribed["content"]["max_input"] == LIMIT
    assert largest >= len(json.dumps({"code": AT})) + 4096, largest

    raw = RawSocket(small.port)
    try:
        raw.send_text("x" * (largest + 1))
        ending = raw.read_to_end(timeout=10)
    finally:
        raw.close()
    assert ending.messages == [] and ending.code == 1009, ending


def test_a_message_far_past_the_largest_is_closed_cleanly_with_1009(small: Chain) -> None:
    """Tests that a message far past the largest is read to its end and thrown away before
    the gateway closes with 1009, so the client sees that code; before, the gateway closed
    the connection with the message unread, which reset it (Chromium saw 1006, a dropped
    connection, and the page could not tell a message too big from a network fault)."""
    raw = RawSocket(small.port)
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)  # still sending
    try:
        try:
            raw.send_text("x" * (48 * LIMIT))
        except OSError as e:  # reset mid-message
            raise AssertionError(f"the gateway dropped the connection mid-message: {e}") from None
        ending = raw.read_to_end(timeout=10)
    finally:
        raw.close()
    assert ending.messages == [] and ending.code == 1009, ending
    small.gateway.wait_for_log(r"a WebSocket message of 3145728 bytes or more, over the largest "
                               rf"\({2 * LIMIT + 65536}\); closing the socket \(code 1009")

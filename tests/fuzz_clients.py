"""Clients that can say anything: raw HTTP/1.1 over a socket, and a WebSocket exchange.

``urllib`` refuses (or quietly fixes) much of what a fuzz test wants to send: control
characters and broken UTF-8 in paths, bodies that lie about their type. :func:`raw_http`
writes the request bytes as given and parses whatever comes back, including nothing.
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from typing import Any

from tornado.websocket import WebSocketClientConnection, websocket_connect


@dataclass
class Response:
    """One HTTP answer; ``status`` 0 means the server closed the connection without one."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


def raw_http(port: int, method: bytes, target: bytes, *, body: bytes | None = None,
             headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
             length: bool = True, timeout: float = 30) -> Response:
    """Send one request exactly as given (``Connection: close``) and read the answer.
    ``length=False`` sends no Content-Length (for a body the headers frame otherwise)."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1:%d" % port,
             b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body is not None and length:
        lines.append(b"Content-Length: %d" % len(body))
    request = b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer (413, 400) before it has read everything
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return parse_response(b"".join(chunks))


def parse_response(raw: bytes) -> Response:
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        return Response(0, body=raw)
    status_line, *header_lines = head.split(b"\r\n")
    status = int(status_line.split()[1])
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    if "content-length" in headers:
        body = body[:int(headers["content-length"])]
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = _unchunk(body)
    return Response(status, headers, body)


def _unchunk(data: bytes) -> bytes:
    out = []
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out.append(data[:size])
        data = data[size + 2:]
    return b"".join(out)


@dataclass
class Exchange:
    """What one WebSocket said back to each frame sent: a reply (dict), or the close code
    and reason if it closed instead (``code`` None: closed without a close frame)."""

    replies: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    code: int | None = None
    reason: str | None = None
    outputs: int = 0


def is_output(msg: dict[str, Any]) -> bool:
    """An output message relayed from a subscription (it has a seq), not a reply."""
    facts = (msg.get("metadata") or {}).get("cellbus") or {}
    return "seq" in facts


async def ws_exchange(port: int, frames: list[str | bytes], *, timeout: float = 15) -> Exchange:
    """Open /ws, send each frame and wait for its reply (or the close); then close."""
    ws = await websocket_connect(f"ws://127.0.0.1:{port}/ws")
    result = Exchange()
    try:
        for frame in frames:
            try:
                await ws.write_message(frame, binary=isinstance(frame, bytes))
            except Exception:  # noqa: BLE001 - closed under us: read the close below
                pass
            reply = await _next_reply(ws, result, timeout)
            if reply is None:
                result.closed, result.code, result.reason = True, ws.close_code, ws.close_reason
                return result
            result.replies.append(reply)
    finally:
        await close(ws)
    return result


async def _next_reply(ws: WebSocketClientConnection, result: Exchange,
                      timeout: float) -> dict[str, Any] | None:
    async with asyncio.timeout(timeout):
        while True:
            raw = await ws.read_message()
            if raw is None:
                return None
            msg = json.loads(raw)
            if is_output(msg):
                result.outputs += 1
                continue
            return msg


async def close(ws: WebSocketClientConnection) -> None:
    """Close ``ws`` with the handshake, and wait for the server's side of it."""
    if ws.protocol is None or ws.close_code is not None:  # closed already: nothing to read
        ws.close()
        return
    ws.close()
    async with asyncio.timeout(5):
        while await ws.read_message() is not None:
            pass

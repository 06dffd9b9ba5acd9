"""A small Jupyter channels client for the tests of gateway/jupyter/: both wire formats,
written from Jupyter's protocol documents (not from the gateway's code)."""

from __future__ import annotations

import asyncio
import json
import struct
import uuid
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

V1 = "v1.kernel.websocket.jupyter.org"
PARTS = ("header", "parent_header", "metadata", "content")


def pack_v1(msg: dict[str, Any], channel: str, buffers: list[bytes] | None = None) -> bytes:
    parts = [channel.encode()] + [json.dumps(msg[k]).encode() for k in PARTS] + list(
        buffers or [])
    offsets = [8 * (len(parts) + 2)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    return struct.pack("<Q", len(offsets)) + b"".join(
        struct.pack("<Q", o) for o in offsets) + b"".join(parts)


def unpack_v1(frame: bytes) -> dict[str, Any]:
    count = int.from_bytes(frame[:8], "little")
    offsets = [int.from_bytes(frame[8 * (i + 1):8 * (i + 2)], "little") for i in range(count)]
    chunks = [frame[offsets[i]:offsets[i + 1]] for i in range(count - 1)]
    msg = {k: json.loads(c) for k, c in zip(PARTS, chunks[1:5])}
    msg["channel"] = chunks[0].decode()
    msg["msg_type"] = msg["header"]["msg_type"]
    msg["buffers"] = chunks[5:]
    return msg


class Channels:
    """One channels WebSocket to a kernel."""

    def __init__(self, ws: WebSocketClientConnection, binary: bool, client: str) -> None:
        self.ws, self.binary, self.client = ws, binary, client

    @classmethod
    async def open(cls, port: int, kernel_id: str, *, client: str | None = None,
                   binary: bool = False, token: str | None = None) -> Channels:
        client = client or uuid.uuid4().hex
        url = f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels?session_id={client}"
        headers = {"Authorization": f"token {token}"} if token else {}
        ws = await websocket_connect(HTTPRequest(url, headers=headers),
                                     subprotocols=[V1] if binary else None)
        return cls(ws, binary, client)

    def message(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        return {"header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type,
                           "session": self.client, "username": "test", "version": "5.4",
                           "date": "2026-01-01T00:00:00.000000Z"},
                "parent_header": {}, "metadata": {}, "content": content}

    async def send(self, msg_type: str, content: dict[str, Any], channel: str = "shell",
                   buffers: list[bytes] | None = None) -> dict[str, Any]:
        """Send a message; ``buffers`` go as Jupyter's servers take them: in the v1 frame,
        or, on a legacy socket, as jupyter_server's binary message (its own serializer)."""
        msg = self.message(msg_type, content)
        if self.binary:
            await self.ws.write_message(pack_v1(msg, channel, buffers), binary=True)
        elif buffers:
            from jupyter_server.services.kernels.connection.base import (
                serialize_binary_message)
            await self.ws.write_message(serialize_binary_message(
                {**msg, "channel": channel, "buffers": buffers}), binary=True)
        else:
            await self.ws.write_message(json.dumps({**msg, "channel": channel}))
        return msg

    async def recv(self, timeout: float = 30) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.read_message(), timeout)
        assert raw is not None, "the socket closed"
        return self._decode(raw)

    async def until_closed(self, timeout: float = 30) -> list[dict[str, Any]]:
        """The messages that reached this client before its socket closed (its gateway
        died, say): those count as delivered, as the client had them."""
        got = []
        while (raw := await asyncio.wait_for(self.ws.read_message(), timeout)) is not None:
            got.append(self._decode(raw))
        return got

    def _decode(self, raw: str | bytes) -> dict[str, Any]:
        if self.binary:
            assert isinstance(raw, bytes), "v1 frames are binary"
            return unpack_v1(raw)
        if isinstance(raw, bytes):  # a legacy message with buffers: jupyter_server's format
            from jupyter_server.services.kernels.connection.base import (
                deserialize_binary_message)
            msg: dict[str, Any] = deserialize_binary_message(raw)
            msg["buffers"] = [bytes(b) for b in msg["buffers"]]
            return msg
        return json.loads(raw)

    async def until(self, predicate: Any, timeout: float = 30) -> list[dict[str, Any]]:
        got = []
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.recv(timeout)
                got.append(msg)
                if predicate(msg):
                    return got

    async def execute(self, code: str, timeout: float = 30) -> list[dict[str, Any]]:
        """Run ``code``; every message of that request up to its idle status."""
        request = await self.send("execute_request", {"code": code, "silent": False})
        got = await self.until(lambda m: m["parent_header"].get("msg_id") ==
                               request["header"]["msg_id"] and m["msg_type"] == "status"
                               and m["content"]["execution_state"] == "idle", timeout)
        return [m for m in got if m["parent_header"].get("msg_id") == request["header"]["msg_id"]]

    async def close(self) -> None:
        self.ws.close()
        async with asyncio.timeout(5):
            while await self.ws.read_message() is not None:
                pass


def stdout(msgs: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in msgs
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")

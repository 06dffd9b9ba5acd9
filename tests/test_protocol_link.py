"""protocol.link: the worker's private channel, over a real socketpair."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from protocol import ProtocolError
from protocol.link import OverseerLink, WorkerLink


async def test_records_cross_both_ways_with_buffers() -> None:
    ours, theirs = socket.socketpair()
    overseer = await OverseerLink.open(ours)
    worker = WorkerLink(theirs)
    try:
        request = {"msg_type": "execute_request", "msg_id": "m", "content": {"code": "1"}}
        await overseer.send(request)
        got = await asyncio.to_thread(worker.recv)
        assert got == {"msg_type": "execute_request", "msg_id": "m", "content": {"code": "1"}}
        sending = asyncio.to_thread(
            worker.send,
            {"msg_type": "display_data", "content": {}, "buffers": [b"\x00" * 300_000]})
        back, _ = await asyncio.wait_for(asyncio.gather(overseer.recv(), sending), 5)
        assert back is not None and back["buffers"] == [b"\x00" * 300_000]
        theirs.close()
        assert await asyncio.wait_for(overseer.recv(), 5) is None
    finally:
        overseer.close()
        theirs.close()


@pytest.mark.parametrize("raw,reason", [
    (struct.pack("!I", 10**9), "oversize"),
    (struct.pack("!I", 3) + b"\xc1\xc1\xc1", "decode"),
    (struct.pack("!I", 1) + b"\x01", "decode"),          # an int, not a dict
    (struct.pack("!I", 1) + b"\x80", "decode"),          # a dict without msg_type
    (struct.pack("!I", 50) + b"\x81", "frames"),         # closed inside a record
])
async def test_bad_records_raise_protocol_error(raw: bytes, reason: str) -> None:
    ours, theirs = socket.socketpair()
    overseer = await OverseerLink.open(ours, max_record=1 << 20)
    try:
        theirs.sendall(raw)
        theirs.close()
        with pytest.raises(ProtocolError) as info:
            await asyncio.wait_for(overseer.recv(), 5)
        assert info.value.reason == reason
    finally:
        overseer.close()

"""Fuzzing the worker link decoder (``protocol.link``) with hypothesis.

What a worker writes to its link is untrusted: session code can write any bytes to that
socket. The property, for the record decoder and for both ends' stream readers: every input
gives records (dicts with a str ``msg_type``, nested no deeper than the bus allows), a clean
end of stream, or a ``ProtocolError`` with a reason; never any other exception.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import COUNTS, fuzz_settings, timeout
from protocol import ProtocolError
from protocol.errors import Reason
from protocol.link import OverseerLink, WorkerLink, decode, encode
from protocol.shape import MAX_NESTING, too_deep
from strategies import any_text, broken_utf8, depths, values

REASONS = set(typing.get_args(Reason))
MAX_RECORD = 16 * 1024
LEN = struct.Struct("!I")


def check_record(record: Any) -> None:
    assert isinstance(record, dict) and isinstance(record["msg_type"], str)
    assert not too_deep(record, MAX_NESTING + 1)


def decode_or_reason(body: bytes) -> dict[str, Any] | None:
    try:
        record = decode(body)
    except ProtocolError as e:
        assert e.reason in REASONS, e
        return None
    check_record(record)
    return record


def packed(value: Any) -> bytes:
    try:
        return msgpack.packb(value, use_bin_type=True)
    except (ValueError, TypeError, OverflowError):
        return b"\xc1"  # never used by msgpack: undecodable


records = st.one_of(
    values(),
    st.dictionaries(st.sampled_from(["msg_type", "content", "buffers", "parent", "metadata"]),
                    values(), max_size=5),
    st.builds(lambda t, c: {"msg_type": t, "content": c}, any_text, values()),
)


@pytest.mark.timeout(timeout(300, 30))
@fuzz_settings(300)
@given(body=st.one_of(st.binary(max_size=200), records.map(packed)))
def test_decode_any_body(body: bytes) -> None:
    """Random bytes and packed values of any shape: a record or a ProtocolError."""
    COUNTS["link.decode"] += 1
    decode_or_reason(body)


@pytest.mark.timeout(timeout(100, 30))
@fuzz_settings(100)
@given(depth=depths, as_dict=st.booleans(), bad=broken_utf8())
def test_decode_deep_and_broken(depth: int, as_dict: bool, bad: bytes) -> None:
    """Records nested up to thousands of levels deep, and text that is not UTF-8."""
    COUNTS["link.deep"] += 1
    level = b"\x81\xa1a" if as_dict else b"\x91"
    body = b"\x82\xa8msg_type\xa6stream\xa7content\x81\xa1x" + level * depth + b"\x00"
    record = decode_or_reason(body)
    assert (record is None) == (depth + 2 > MAX_NESTING + 1)
    broken = b"\x81\xa8msg_type\xd9" + bytes([len(bad)]) + bad  # str 8: all of it
    assert decode_or_reason(broken) is None


def stream(data: st.DataObject) -> bytes:
    """A byte stream of valid records, garbage and lying length prefixes, maybe cut."""
    chunks = data.draw(st.lists(st.one_of(
        st.builds(lambda c: encode({"msg_type": "stream", "content": c}),
                  st.dictionaries(any_text.filter(lambda t: t.isprintable()), st.text(max_size=20),
                                  max_size=3)),
        st.binary(max_size=40),
        st.builds(lambda n, b: LEN.pack(n) + b, st.sampled_from([0, 1, 5, MAX_RECORD,
                                                                 MAX_RECORD + 1, 2**32 - 1]),
                  st.binary(max_size=40)),
        records.map(lambda v: (lambda b: LEN.pack(len(b)) + b)(packed(v))),
    ), max_size=6))
    raw = b"".join(chunks)
    cut = data.draw(st.integers(0, len(raw)))
    return raw[:cut] if data.draw(st.booleans()) else raw


def send_and_close(sock: socket.socket, raw: bytes) -> None:
    """Write ``raw`` and end the stream (the reading side then sees end of file)."""
    sock.sendall(raw)
    sock.shutdown(socket.SHUT_WR)


def drain_worker_end(raw: bytes) -> None:
    """Read ``raw`` with a WorkerLink until end of stream or the first ProtocolError."""
    ours, theirs = socket.socketpair()
    writer = threading.Thread(target=send_and_close, args=(theirs, raw))
    writer.start()
    try:
        link = WorkerLink(ours, max_record=MAX_RECORD)
        ours.settimeout(10)
        while True:
            try:
                record = link.recv()
            except ProtocolError as e:
                assert e.reason in REASONS
                return
            if record is None:
                return
            check_record(record)
    finally:
        writer.join(10)
        ours.close()
        theirs.close()


async def drain_overseer_end(raw: bytes) -> None:
    """The same with an OverseerLink on the event loop."""
    ours, theirs = socket.socketpair()
    link = await OverseerLink.open(ours, max_record=MAX_RECORD)
    writer = asyncio.create_task(asyncio.to_thread(send_and_close, theirs, raw))
    try:
        while True:
            try:
                record = await asyncio.wait_for(link.recv(), 10)
            except ProtocolError as e:
                assert e.reason in REASONS
                return
            if record is None:
                return
            check_record(record)
    finally:
        await writer
        link.close()
        theirs.close()


@pytest.mark.timeout(timeout(200, 30))
@fuzz_settings(200)
@given(data=st.data())
def test_worker_end_reads_any_stream(data: st.DataObject) -> None:
    """The worker's end of the link (which reads the overseer) on any byte stream."""
    COUNTS["link.worker-stream"] += 1
    drain_worker_end(stream(data))


@pytest.mark.timeout(timeout(200, 30))
@fuzz_settings(200)
@given(data=st.data())
def test_overseer_end_reads_any_stream(data: st.DataObject) -> None:
    """The overseer's end (which reads what session code wrote) on any byte stream."""
    COUNTS["link.overseer-stream"] += 1
    asyncio.run(drain_overseer_end(stream(data)))


@pytest.mark.parametrize("raw", [b"\x00", b"\x00\x00\x00", LEN.pack(3) + b"\x81"])
def test_link_cut_inside_a_record_is_a_frames_error(raw: bytes) -> None:
    """A stream that ends inside a length prefix or a record: ``frames``, at both ends (it
    was a struct.error at the worker's end, and a silent end of stream at the overseer's)."""
    ours, theirs = socket.socketpair()
    theirs.sendall(raw)
    theirs.close()
    with pytest.raises(ProtocolError) as info:
        WorkerLink(ours).recv()
    assert info.value.reason == "frames"
    ours.close()

    async def overseer() -> None:
        a, b = socket.socketpair()
        link = await OverseerLink.open(a)
        b.sendall(raw)
        b.close()
        with pytest.raises(ProtocolError) as info:
            await asyncio.wait_for(link.recv(), 5)
        assert info.value.reason == "frames"
        link.close()

    asyncio.run(overseer())

"""Decoding bytes from a less-trusted peer costs memory bounded by a count, not by luck.

Each byte ``0x80`` decodes into a 64-byte dict; five bytes can announce four billion array
elements. The device decodes its workers' records and the broker its devices' bus frames
with :func:`protocol.bounded.unpack`, which refuses such values while decoding. The
end-to-end check through a real device is tests/test_link_amplification.py.
"""

from __future__ import annotations

import struct
import tracemalloc

import msgpack
import pytest

from protocol import ProtocolError, Session
from protocol.bounded import DEFAULT_MAX_ITEMS, unpack
from protocol.link import decode
from protocol.wire import FROM_BROKER_MAX_VALUES

MIB = 1 << 20


def maps(n: int) -> bytes:
    """An array32 of ``n`` empty maps: ``n`` + 5 bytes, about 72 ``n`` bytes decoded."""
    return b"\xdd" + struct.pack("!I", n) + b"\x80" * n


def in_record(value: bytes) -> bytes:
    """A well-formed worker record whose content's one value is ``value`` (msgpack)."""
    return (b"\x82" + msgpack.packb("msg_type") + msgpack.packb("stream")
            + msgpack.packb("content") + b"\x81" + msgpack.packb("x") + value)


AMPLIFIERS = {
    "one long array": maps(8 * MIB),
    "many arrays, none long": b"\xdc" + struct.pack("!H", 16) + maps(MIB // 2) * 16,
    "an announced length with no body": b"\xdd" + struct.pack("!I", 2**32 - 1),
    "a long map": b"\xdf" + struct.pack("!I", 2 * MIB)
    + b"".join(msgpack.packb(f"{i}") + b"\xc0" for i in range(2 * MIB)),
}


@pytest.mark.parametrize("body", AMPLIFIERS.values(), ids=list(AMPLIFIERS))
def test_an_amplifying_record_is_refused_while_decoding(body: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError) as info:
            decode(in_record(body))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.reason == "oversize"
    assert peak < 120 * MIB, f"decoding allocated {peak / MIB:.0f} MiB before refusing"


def test_real_output_within_the_limit_decodes_unchanged() -> None:
    value = {"data": {"application/json": list(range(DEFAULT_MAX_ITEMS // 2))},
             "rows": [{"a": i, "b": [i, str(i)]} for i in range(50_000)], "text": "x" * MIB}
    assert unpack(msgpack.packb(value, use_bin_type=True)) == value


def test_a_malformed_body_is_still_a_decode_error() -> None:
    with pytest.raises(ProtocolError) as info:
        unpack(b"\xc1")
    assert info.value.reason == "decode"


def test_a_bus_frame_from_a_peer_is_bounded_the_same_way() -> None:
    """What the broker decodes from a device (and every node from its peers)."""
    s = Session(b"test-key")
    frames = s.serialize(s.msg("stream", {}))
    at = frames.index(b"<IDS|MSG>")
    frames[at + 5] = b"\x81\xa1x" + maps(4 * MIB)
    frames[at + 1] = s.sign(frames[at + 2:at + 6])
    with pytest.raises(ProtocolError) as info:
        s.deserialize(frames)
    assert info.value.reason == "oversize" and "content" in str(info.value)


def test_a_frame_from_the_broker_is_bounded_by_its_bytes() -> None:
    """The broker's replies carry stored output, whose messages each entered under the cap
    but together may hold more values: a gateway's Session takes them, any other refuses."""
    content = {"messages": [{"data": {"application/json": [0] * 400_000}}] * 3}
    sender = Session(b"test-key")
    frames = sender.serialize(sender.msg("session_replay_reply", content))
    with pytest.raises(ProtocolError) as info:
        Session(b"test-key").deserialize(frames)
    assert info.value.reason == "oversize"
    gateway = Session(b"test-key", max_values=FROM_BROKER_MAX_VALUES)
    assert gateway.deserialize(frames)[1]["content"] == content

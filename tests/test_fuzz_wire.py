"""Fuzzing the wire decoder (``protocol.wire.Session.deserialize``) with hypothesis.

The property, for msgpack and JSON packers alike: whatever frames arrive, ``deserialize``
either returns a well-formed message or raises ``ProtocolError`` with a known ``reason``;
never any other exception. Frames are random, mutated from valid signed messages (mutations
are re-signed too, so they reach the decoder behind the HMAC), of wrong types, deeply nested,
huge, of unknown msg_types and with broken UTF-8. Packing hostile values likewise gives a
``ProtocolError("content")`` or frames that decode back to the same message.
"""

from __future__ import annotations

import json
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import COUNTS, fuzz_settings, timeout
from protocol import ProtocolError, Session
from protocol.errors import Reason
from protocol.msgtypes import DELIM
from protocol.wire import HEADER_FIELDS
from strategies import any_text, broken_utf8, deep, deep_json, depths, values

KEY = b"fuzz-key"
REASONS = set(typing.get_args(Reason))
PACKERS = ["msgpack", "json"]
#: A small frame limit, so that "huge" is reachable without allocating gigabytes.
MAX_FRAME = 64 * 1024


def session(packer: str) -> Session:
    return Session(KEY, packer=packer, max_frame_size=MAX_FRAME)  # type: ignore[arg-type]


def check(s: Session, frames: list[Any]) -> dict[str, Any] | None:
    """Decode ``frames``: a valid message, or None after a ProtocolError with a reason."""
    try:
        idents, msg = s.deserialize(frames)
    except ProtocolError as e:
        assert e.reason in REASONS, e
        return None
    assert all(isinstance(i, bytes) for i in idents)
    header = msg["header"]
    assert all(isinstance(header[f], str) for f in HEADER_FIELDS) and header["msg_type"]
    assert msg["msg_type"] == header["msg_type"] and msg["msg_id"] == header["msg_id"]
    for name in ("parent_header", "metadata", "content"):
        assert isinstance(msg[name], dict)
    assert all(isinstance(b, bytes) for b in msg["buffers"])
    return msg


def signed(s: Session, parts: list[bytes], *, idents: list[bytes] = (),  # type: ignore[assignment]
           buffers: list[bytes] = ()) -> list[bytes]:  # type: ignore[assignment]
    """Frames around four raw dict parts, with a valid signature over them."""
    return [*idents, DELIM, s.sign(parts), *parts, *buffers]


def valid_parts(s: Session, msg_type: str = "execute_request",
                content: dict[str, Any] | None = None) -> list[bytes]:
    msg = s.msg(msg_type, content if content is not None else {"code": "1"})
    return s.serialize(msg)[2:6]


# -- random frames ----------------------------------------------------------------------------

frame = st.one_of(st.binary(max_size=64), st.just(DELIM), st.binary(min_size=32, max_size=80))


@pytest.mark.timeout(timeout(400, 30))
@pytest.mark.parametrize("packer", PACKERS)
@fuzz_settings(400)
@given(frames=st.lists(frame, max_size=12))
def test_random_frames(packer: str, frames: list[bytes]) -> None:
    """Random frames, with and without the delimiter: rejected, never a crash."""
    COUNTS["wire.random"] += 1
    assert check(session(packer), frames) is None  # nothing random carries a valid HMAC


@pytest.mark.timeout(timeout(200, 30))
@fuzz_settings(200)
@given(frames=st.lists(st.one_of(st.text(max_size=5), st.integers(), st.none(), st.floats(),
                                 st.lists(st.integers(), max_size=3), st.just(DELIM),
                                 st.binary(max_size=8)), max_size=8))
def test_frames_of_wrong_types(frames: list[Any]) -> None:
    """Frames that are not bytes at all (str, int, None, lists): a ProtocolError."""
    COUNTS["wire.wrong-types"] += 1
    check(session("msgpack"), frames)


# -- mutated valid messages, re-signed --------------------------------------------------------

def mutate(data: st.DataObject, parts: list[bytes]) -> list[bytes]:
    """Flip, cut, extend or replace bytes of one of the four dict parts."""
    parts = list(parts)
    i = data.draw(st.integers(0, 3), "part")
    part = parts[i]
    how = data.draw(st.sampled_from(["flip", "truncate", "extend", "replace", "splice"]))
    if how == "flip" and part:
        at = data.draw(st.integers(0, len(part) - 1))
        part = part[:at] + bytes([part[at] ^ data.draw(st.integers(1, 255))]) + part[at + 1:]
    elif how == "truncate":
        part = part[:data.draw(st.integers(0, len(part)))]
    elif how == "extend":
        part = part + data.draw(st.binary(min_size=1, max_size=16))
    elif how == "replace":
        part = data.draw(st.binary(max_size=64))
    else:
        at = data.draw(st.integers(0, len(part)))
        part = part[:at] + data.draw(broken_utf8()) + part[at:]
    parts[i] = part
    return parts


@pytest.mark.timeout(timeout(600, 30))
@pytest.mark.parametrize("packer", PACKERS)
@fuzz_settings(600)
@given(data=st.data(), msg_type=st.one_of(st.sampled_from(["execute_request", "status"]),
                                          any_text))
def test_mutated_signed_messages(packer: str, data: st.DataObject, msg_type: str) -> None:
    """A valid message with a part mutated and then signed again (a buggy peer that holds
    the key): the decoder behind the HMAC rejects it or returns a valid message."""
    COUNTS["wire.mutated"] += 1
    s = session(packer)
    try:
        parts = valid_parts(s, msg_type or "x")
    except ProtocolError as e:  # a msg_type with a lone surrogate cannot even be packed
        assert e.reason == "content"
        return
    parts = mutate(data, parts)
    idents = data.draw(st.lists(st.binary(max_size=8), max_size=2), "idents")
    buffers = data.draw(st.lists(st.binary(max_size=8), max_size=2), "buffers")
    check(s, signed(s, parts, idents=idents, buffers=buffers))


@pytest.mark.timeout(timeout(300, 30))
@pytest.mark.parametrize("packer", PACKERS)
@fuzz_settings(300)
@given(data=st.data())
def test_unsigned_mutations_never_pass(packer: str, data: st.DataObject) -> None:
    """Mutations without a new signature never get past the HMAC; a replay never twice."""
    COUNTS["wire.unsigned-mutated"] += 1
    s = session(packer)
    frames = s.serialize(s.msg("execute_request", {"code": "1"}))
    mutated = [frames[0], frames[1], *mutate(data, frames[2:6])]
    if mutated != frames:
        assert check(s, mutated) is None
    assert check(s, frames) is not None
    assert check(s, frames) is None  # replayed


# -- wrong shapes, unknown types, deep nesting, huge fields, broken UTF-8 ---------------------

def pack_raw(packer: str, value: Any) -> bytes:
    """``value`` packed however the packer can, without the Session's own checks."""
    if packer == "json":
        return json.dumps(value, ensure_ascii=True, default=repr).encode()
    return msgpack.packb(value, use_bin_type=True, default=repr)


@pytest.mark.timeout(timeout(250, 30))
@pytest.mark.parametrize("packer", PACKERS)
@fuzz_settings(250)
@given(header=st.one_of(values(), st.dictionaries(st.sampled_from(HEADER_FIELDS), values(),
                                                  max_size=6)),
       rest=st.lists(values(), min_size=3, max_size=3))
def test_signed_parts_of_any_shape(packer: str, header: Any, rest: list[Any]) -> None:
    """Signed parts that are not dicts, headers with missing or mistyped fields, unknown
    msg_types, values of every type: a valid message or a ProtocolError."""
    COUNTS["wire.shapes"] += 1
    s = session(packer)
    try:
        parts = [pack_raw(packer, v) for v in (header, *rest)]
    except (ValueError, TypeError, OverflowError):
        return  # not representable in this packer at all: nothing to send
    msg = check(s, signed(s, parts))
    if msg is not None:
        assert msg["header"] == header


@pytest.mark.timeout(timeout(150, 30))
@pytest.mark.parametrize("packer", PACKERS)
@fuzz_settings(150)
@given(depth=depths, as_dict=st.booleans(), where=st.integers(0, 3))
def test_deep_nesting(packer: str, depth: int, as_dict: bool, where: int) -> None:
    """Parts nested up to thousands of levels: decoded or a ProtocolError, never a
    RecursionError or a msgpack stack error escaping."""
    COUNTS["wire.deep"] += 1
    s = session(packer)
    parts = valid_parts(s)
    if packer == "json":
        nested = deep_json(depth) if not as_dict else b'{"a":' * depth + b"0" + b"}" * depth
        parts[where] = b'{"x":' + nested + b"}"
    else:
        parts[where] = b"\x81\xa1x" + (b"\x81\xa1a" if as_dict else b"\x91") * depth + b"\x00"
    check(s, signed(s, parts))


@pytest.mark.timeout(timeout(100, 30))
@pytest.mark.parametrize("packer", PACKERS)
@fuzz_settings(100)
@given(size=st.sampled_from([MAX_FRAME - 100, MAX_FRAME, MAX_FRAME + 1, 4 * MAX_FRAME]),
       where=st.integers(0, 5))
def test_huge_fields(packer: str, size: int, where: int) -> None:
    """A string field, or a buffer, around and past the frame limit: accepted whole below
    it, ``oversize`` above it."""
    COUNTS["wire.huge"] += 1
    s = session(packer)
    content = {"code": "x" * size} if where < 4 else {"code": "1"}
    try:
        frames = s.serialize(s.msg("execute_request", content,
                                   metadata={"pad": "y" * size} if where == 2 else None))
    except ProtocolError:
        raise AssertionError("packing a long string must not fail") from None
    if where >= 4:
        frames.append(b"z" * size)
    biggest = max(len(f) for f in frames)
    try:
        s.deserialize(frames)
    except ProtocolError as e:
        assert e.reason == "oversize" and biggest > MAX_FRAME
    else:
        assert biggest <= MAX_FRAME


@pytest.mark.timeout(timeout(300, 30))
@pytest.mark.parametrize("packer", PACKERS)
@fuzz_settings(300)
@given(bad=broken_utf8(), where=st.integers(0, 3), as_key=st.booleans())
def test_broken_utf8(packer: str, bad: bytes, where: int, as_key: bool) -> None:
    """Strings whose bytes are not UTF-8, as values and as keys: ``decode``, never a
    UnicodeDecodeError escaping."""
    COUNTS["wire.utf8"] += 1
    s = session(packer)
    parts = valid_parts(s)
    if packer == "json":
        text = b'"' + bad.replace(b"\\", b"").replace(b'"', b"") + b'"'
        parts[where] = b"{" + text + b":1}" if as_key else b'{"x":' + text + b"}"
    else:
        raw = bytes([0xa0 | len(bad)]) + bad if len(bad) < 32 else b"\xd9" + bytes([len(bad)]) + bad
        parts[where] = b"\x81" + raw + b"\x01" if as_key else b"\x81\xa1x" + raw
    assert check(s, signed(s, parts)) is None


# -- packing hostile values -------------------------------------------------------------------

@pytest.mark.timeout(timeout(250, 30))
@pytest.mark.parametrize("packer", PACKERS)
@fuzz_settings(250)
@given(content=st.dictionaries(any_text, values(), max_size=5),
       msg_type=any_text)
def test_serialize_refuses_or_round_trips(packer: str, content: dict[Any, Any],
                                          msg_type: str) -> None:
    """``serialize`` of anything an untrusted side could hand a node: ``ProtocolError
    ("content")`` or frames that decode to the same values."""
    COUNTS["wire.serialize"] += 1
    s = session(packer)
    msg = s.msg(msg_type or "x", content)
    try:
        frames = s.serialize(msg)
    except ProtocolError as e:
        assert e.reason == "content"
        return
    back = check(Session(KEY, packer=packer, max_frame_size=1 << 30), frames)  # type: ignore[arg-type]
    assert back is not None
    if packer == "msgpack":
        assert back["content"] == content or _has_nan(content)


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return value != value
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    return False


def test_deep_value_is_refused_by_serialize() -> None:
    """Past msgpack's nesting limit, serialize says ``content`` instead of ValueError."""
    s = session("msgpack")
    with pytest.raises(ProtocolError) as info:
        s.serialize(s.msg("stream", {"x": deep(5000)}))
    assert info.value.reason == "content"

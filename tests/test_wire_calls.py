"""protocol/wire.py on the hot path: what a node runs in Python per message it builds, sends
and checks. Every node signs each message it sends and checks each one it takes; the
``hmac.HMAC`` wrapper's copy, update and hexdigest and a ``uuid.UUID`` per message id were
Python calls around C calls, and a twelfth of the instructions per execution of the
device (bench/RESULTS.md, issue 25, twelfth pass)."""

from __future__ import annotations

import hashlib
import hmac
import sys
import uuid
from collections import Counter
from types import FrameType
from typing import Any

from protocol.msgtypes import DELIM
from protocol.wire import Session

KEY = b"k" * 32


def python_calls(fn: Any) -> Counter[str]:
    """Python functions entered while ``fn()`` runs, by file name."""
    calls: Counter[str] = Counter()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            calls[frame.f_code.co_filename.rsplit("/", 1)[-1]] += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def test_no_python_wrapper_per_message() -> None:
    sender, receiver = Session(KEY), Session(KEY)

    def hundred() -> None:
        for i in range(100):
            msg = sender.msg("stream", {"name": "stdout", "text": f"{i}\n"})
            receiver.deserialize(sender.serialize(msg))

    calls = python_calls(hundred)
    assert calls["hmac.py"] == 0, calls  # was 14 per message
    assert calls["uuid.py"] == 0, calls  # was 3 per message


def test_signature_and_ids_unchanged() -> None:
    """The same HMAC-SHA256 as ``hmac.new`` over the four dict frames, and message ids that
    are uuid4 hex, as Jupyter's are."""
    wire = Session(KEY)
    ids = set()
    for i in range(2000):
        frames = wire.serialize(wire.msg("stream", {"text": "x" * i}))
        at = frames.index(DELIM)
        want = hmac.new(KEY, b"".join(frames[at + 2:at + 6]), hashlib.sha256).hexdigest()
        assert frames[at + 1] == want.encode()
        msg_id = Session(KEY).deserialize(frames)[1]["msg_id"]
        parsed = uuid.UUID(hex=msg_id)
        assert parsed.hex == msg_id and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        ids.add(msg_id)
    assert len(ids) == 2000


def test_a_frame_decodes_in_one_call() -> None:
    """Each of the four dict frames of a message taken goes straight to the bounded decoder,
    and a frame no longer than its cap (nearly all) calls msgpack with plain keywords: a
    function around the decoder was a Python call per frame, and an empty ``**hooks`` merged
    into the keywords cost a third as much again as decoding a small frame (callgrind:
    14.6 against 10.9 thousand instructions for a header frame)."""
    import dis

    from protocol import bounded

    sender, receiver = Session(KEY), Session(KEY)
    frames = sender.serialize(sender.msg("stream", {"name": "stdout", "text": "2\n"}))
    calls = python_calls(lambda: receiver.deserialize(frames))
    assert calls["wire.py"] == 4, calls  # was 8: a function around the decoder per frame
    assert calls["bounded.py"] == 4, calls
    merges = [i for i in dis.get_instructions(bounded.unpack) if i.opname == "CALL_FUNCTION_EX"]
    assert merges == [], merges  # was one: msgpack.unpackb(..., **hooks)


def test_a_small_frame_decodes_without_keywords() -> None:
    """A frame no longer than its cap is decoded with msgpack's defaults (raw=False,
    strict_map_key=True, every length bounded by the frame's own), which are what the keywords
    asked for: parsing them was 6 % of decoding a header frame. Only the hooked decode of a
    frame longer than its cap passes keywords; what is refused stays refused."""
    import dis

    import msgpack
    import pytest

    from protocol import bounded
    from protocol.errors import ProtocolError

    kw_calls = [i for i in dis.get_instructions(bounded.unpack) if i.opname == "KW_NAMES"]
    assert len(kw_calls) == 1, kw_calls  # was 2: the small frame's call had four keywords
    assert bounded.unpack(msgpack.packb({"a": b"\xff", "b": [1, "x"]})) == {
        "a": b"\xff", "b": [1, "x"]}
    with pytest.raises(ProtocolError) as e:  # strict_map_key: only str keys
        bounded.unpack(msgpack.packb({1: 2}))
    assert e.value.reason == "decode"
    with pytest.raises(ProtocolError) as e:  # an array announcing more than the bytes hold
        bounded.unpack(b"\xdd\xff\xff\xff\xff")
    assert e.value.reason in ("oversize", "decode")

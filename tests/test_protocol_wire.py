"""protocol.Session: round trips and every way a message is rejected."""

from __future__ import annotations

import hashlib
import hmac

import msgpack
import pytest
import zmq

from protocol import ProtocolError, Session
from protocol.msgtypes import DELIM

KEY = b"test-key"


@pytest.fixture(params=["msgpack", "json"])
def session(request: pytest.FixtureRequest) -> Session:
    return Session(KEY, packer=request.param)


def resign(s: Session, frames: list[bytes]) -> list[bytes]:
    """Re-sign frames after tampering with a dict frame, to get past the HMAC check."""
    at = frames.index(DELIM)
    frames[at + 1] = s.sign(frames[at + 2:at + 6])
    return frames


def test_round_trip_keeps_jupyter_keys(session: Session) -> None:
    """A message survives serialize/deserialize with jupyter_client's keys and routing ids."""
    parent = session.msg("execute_request", {"code": "1"})
    msg = session.msg("stream", {"name": "stdout", "text": "é\n"}, parent=parent,
                      metadata={"cellbus": {"seq": 3}})
    msg["buffers"] = [b"\x00raw"]
    idents, back = session.deserialize(session.serialize(msg, [b"a", b"b"]))
    assert idents == [b"a", b"b"]
    assert set(back) == {"header", "msg_id", "msg_type", "parent_header", "metadata",
                         "content", "buffers"}
    assert back["content"] == {"name": "stdout", "text": "é\n"}
    assert back["parent_header"]["msg_id"] == parent["msg_id"]
    assert back["metadata"] == {"cellbus": {"seq": 3}}
    assert back["buffers"] == [b"\x00raw"]
    assert back["header"]["version"] == "5.4" and back["header"]["date"].endswith("Z")


def test_zmq_frames_are_accepted(session: Session) -> None:
    frames = [zmq.Frame(f) for f in session.serialize(session.msg("status", {}))]
    assert session.deserialize(frames)[1]["msg_type"] == "status"


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="never sends unsigned"):
        Session(b"")


@pytest.mark.parametrize("reason,tamper", [
    ("frames", lambda s, f: [x for x in f if x != DELIM]),
    ("frames", lambda s, f: f[:5]),
    ("signature", lambda s, f: f[:1] + [b""] + f[2:]),
    ("signature", lambda s, f: f[:1] + [b"0" * 64] + f[2:]),
    ("signature", lambda s, f: f[:2] + [f[2] + b" "] + f[3:]),
    ("decode", lambda s, f: resign(s, f[:2] + [b"\xc1\xff not packed"] + f[3:])),
    ("decode", lambda s, f: resign(s, f[:5] + [s.pack([1, 2])] + f[6:])),
    ("header", lambda s, f: resign(s, f[:2] + [s.pack({"msg_id": "x"})] + f[3:])),
])
def test_bad_input_raises_protocol_error(session: Session, reason: str, tamper) -> None:
    frames = session.serialize(session.msg("status", {"execution_state": "idle"}))
    with pytest.raises(ProtocolError) as info:
        session.deserialize(tamper(session, list(frames)))
    assert info.value.reason == reason


def test_wrong_key_is_a_bad_signature(session: Session) -> None:
    other = Session(b"another-key", packer=session.packer)
    with pytest.raises(ProtocolError, match="signature"):
        session.deserialize(other.serialize(other.msg("status", {})))


def test_replay_is_rejected_after_one_acceptance(session: Session) -> None:
    frames = session.serialize(session.msg("status", {}))
    session.deserialize(frames)
    with pytest.raises(ProtocolError) as info:
        session.deserialize(frames)
    assert info.value.reason == "replay"


def test_a_forged_message_does_not_poison_the_replay_history(session: Session) -> None:
    """A signature is remembered only once it verified: a forged copy cannot block the
    genuine message."""
    frames = session.serialize(session.msg("status", {}))
    forged = frames[:2] + [frames[2] + b" "] + frames[3:]
    with pytest.raises(ProtocolError, match="signature"):
        session.deserialize(forged)
    session.deserialize(frames)


def test_replay_history_is_bounded() -> None:
    s = Session(KEY, replay_history=3)
    first = s.serialize(s.msg("status", {}))
    s.deserialize(first)
    for _ in range(3):
        s.deserialize(s.serialize(s.msg("status", {})))
    assert len(s._seen) == 3
    s.deserialize(first)  # forgotten: the oldest goes first


def test_oversize_frame_is_rejected_before_the_signature_is_computed() -> None:
    s = Session(KEY, max_frame_size=1000)
    frames = s.serialize(s.msg("stream", {"text": "x" * 2000}))
    with pytest.raises(ProtocolError) as info:
        s.deserialize(frames)
    assert info.value.reason == "oversize"


def test_deeply_nested_content_is_a_protocol_error_not_a_crash(session: Session) -> None:
    if session.packer == "json":
        deep = b"[" * 100_000 + b"]" * 100_000
    else:
        deep = b"\x91" * 100_000 + b"\xc0"
    frames = session.serialize(session.msg("status", {}))
    frames[5] = deep
    frames = resign(session, frames)
    with pytest.raises(ProtocolError) as info:
        session.deserialize(frames)
    assert info.value.reason == "decode"


def test_signature_is_hmac_sha256_over_the_four_dict_frames() -> None:
    s = Session(KEY)
    frames = s.serialize(s.msg("status", {}))
    expected = hmac.new(KEY, b"".join(frames[2:6]), hashlib.sha256).hexdigest().encode()
    assert frames[1] == expected
    assert msgpack.unpackb(frames[2])["msg_type"] == "status"


async def test_send_and_recv_keep_order_through_the_high_water_mark() -> None:
    """Session.send and Session.recv on BusSockets deliver every message once, in order,
    both ways at once, when senders block at a tiny high-water mark and receivers wait: no
    lost wake-up, nothing overtaken."""
    import asyncio

    from protocol.sockets import BusSocket

    ctx = zmq.Context()
    a, b = ctx.socket(zmq.DEALER, BusSocket), ctx.socket(zmq.DEALER, BusSocket)
    for sock in (a, b):
        sock.linger, sock.sndhwm, sock.rcvhwm = 0, 2, 2
    b.bind("inproc://hwm")
    a.connect("inproc://hwm")
    sender, receiver = Session(KEY), Session(KEY)
    n = 400

    async def pump(src: BusSocket, name: str) -> None:
        for i in range(n):
            await sender.send(src, sender.msg("stream", {"i": i, "from": name}))

    async def drain(dst: BusSocket, name: str) -> list[int]:
        got = []
        for _ in range(n):
            _, msg = await receiver.recv(dst)
            assert msg["content"]["from"] == name
            got.append(msg["content"]["i"])
            if len(got) % 50 == 0:
                await asyncio.sleep(0.001)  # let the sender hit the high-water mark
        return got

    try:
        results = await asyncio.wait_for(asyncio.gather(
            pump(a, "a"), pump(b, "b"), drain(b, "a"), drain(a, "b")), 20)
        assert results[2] == list(range(n)) and results[3] == list(range(n))
    finally:
        a.close(0)
        b.close(0)
        ctx.term()

"""Bad input the fuzzing found, one plain regression test per bug (tests/test_fuzz_*.py).

Each of these made a node fail before its fix: a 500 from the gateway, a WebSocket aborted
without a close frame, tornado's bare 400, or a request dropped as a replay and answered
only by a timeout. Now each gets a clear 4xx with a JSON error, and the chain serves on.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from fuzz_chain import MAX_BODY
from fuzz_clients import raw_http, ws_exchange
from harness import Chain
from strategies import deep_json, json_bytes

BAD_BODIES: list[tuple[str, bytes]] = [
    ("lone surrogate in input", b'{"input": "\\ud800"}'),
    ("deep JSON", b'{"input": ' + deep_json(5000) + b"}"),
    ("state past 64 bits", b'{"interact_id": "i", "values": {}, "state": ' +
     str(2**70).encode() + b"}"),
    ("NaN", b'{"interact_id": "i", "values": {"x": NaN}, "state": 1}'),
]


@pytest.mark.parametrize("what,data", BAD_BODIES, ids=[w for w, _ in BAD_BODIES])
def test_bad_json_bodies_are_400(fuzz_chain: Chain, what: str, data: bytes) -> None:
    """Each of these was a 500 (or a dead request) before the fixes."""
    for action in ("evaluate", "interact"):
        resp = raw_http(fuzz_chain.port, b"POST", f"/home/alice/w1/c1/{action}".encode(),
                        body=data, headers=[(b"Content-Type", b"application/json")])
        assert resp.status in (400, 404), (action, resp)
        assert "error" in resp.json()


@pytest.mark.parametrize("since", [str(2**63), str(2**64), str(2**70)])
def test_since_beyond_64_bits_is_400(fuzz_chain: Chain, since: str) -> None:
    """On a cell that exists: since reached the store, which holds 64-bit integers."""
    assert fuzz_chain.evaluate("alice/w1/c1", "1")[0] == 202
    resp = raw_http(fuzz_chain.port, b"GET", f"/home/alice/w1/c1/update?since={since}".encode())
    assert resp.status == 400 and "since" in resp.json()["error"]



ADDRESS = {"user": "carol", "worksheet": "w1", "cell_id": "c1"}
BAD_FRAMES: list[tuple[str, str]] = [
    ("metadata not an object", json.dumps({"header": {"msg_type": "execute_request"},
                                            "content": {"code": "1"}, "metadata": [1]})),
    ("cellbus not an object", json.dumps({"header": {"msg_type": "execute_request"},
                                           "metadata": {"cellbus": "carol"}})),
    ("header not an object", json.dumps({"msg_type": "execute_request", "header": [1, 2]})),
    ("header with a header", json.dumps({"header": {"msg_type": "nope", "header": 5}})),
    ("deep JSON", '{"header": {"msg_type": "execute_request"}, "content": ' +
     deep_json(5000).decode() + "}"),
    ("since past 64 bits", json.dumps({"header": {"msg_type": "subscribe_request"}, "content": {
        "user": "carol", "worksheet": "w1", "since": 2**64}})),
    ("lone surrogate", '{"header": {"msg_type": "execute_request"}, "content": {"code": '
     '"\\ud800"}, "metadata": {"cellbus": ' + json.dumps(ADDRESS) + "}}"),
    ("state past 64 bits", json.dumps({"header": {"msg_type": "interact_request"}, "content": {
        "interact_id": "i", "values": {}, "state": 2**70}, "metadata": {"cellbus": ADDRESS}})),
]


@pytest.mark.parametrize("what,frame", BAD_FRAMES, ids=[w for w, _ in BAD_FRAMES])
def test_bad_websocket_frames_get_a_400_reply(fuzz_chain: Chain, what: str, frame: str) -> None:
    """Each of these crashed the socket's handler (tornado aborted the connection without a
    close frame) before the fixes; now each gets a 400 reply and the socket stays open."""
    result = asyncio.run(ws_exchange(fuzz_chain.port, [frame, frame]))
    assert not result.closed and len(result.replies) == 2, result
    for reply in result.replies:
        assert reply["content"]["ok"] is False and reply["content"]["http_status"] == 400, reply


def test_a_header_sent_twice_gets_409_not_a_silent_replay(fuzz_chain: Chain) -> None:
    """Found by the long WebSocket run: the gateway forwarded a client's whole header, so the
    same frame sent twice made two identical signed messages; the broker dropped the second
    as a replay and the client waited 10 s for a 503."""
    frame = json.dumps({"header": {"msg_type": "execute_request", "msg_id": uuid.uuid4().hex,
                                   "session": "s", "username": "u", "date": "d",
                                   "version": "5.4"}, "content": {"code": "1"},
                        "metadata": {"cellbus": {"user": "dave", "worksheet": "w9",
                                                 "cell_id": "c1"}}})
    started = time.monotonic()
    replies = [asyncio.run(ws_exchange(fuzz_chain.port, [frame])).replies[0]["content"]
               for _ in range(3)]
    assert replies[0]["ok"] is True
    assert [r["http_status"] for r in replies[1:]] == [409, 409], replies
    assert time.monotonic() - started < 9  # the bug made each repeat wait 10 s (a busy CI
    # took 3-4 s for the three)


def chunked(data: bytes, size: int = 8192) -> bytes:
    parts = [data[i:i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


@pytest.mark.parametrize("how", ["length", "chunked", "head", "way over"])
def test_bodies_over_the_limit_get_a_json_413(fuzz_chain: Chain, how: str) -> None:
    """tornado answered these with a bare "400 Bad Request" and no body (and a HEAD with a
    closed connection); the gateway now answers 413 with its JSON error."""
    data = json_bytes({"input": "x" * (MAX_BODY + (10 * MAX_BODY if how == "way over" else 1))})
    method = b"HEAD" if how == "head" else b"POST"
    headers = [(b"Content-Type", b"application/json")]
    if how == "chunked":
        headers.append((b"Transfer-Encoding", b"chunked"))
    resp = raw_http(fuzz_chain.port, method, b"/home/alice/w1/c1/evaluate", headers=headers,
                    body=chunked(data) if how == "chunked" else data, length=how != "chunked")
    assert resp.status == 413, resp
    assert resp.headers["content-type"].startswith("application/json")
    if how != "head":
        assert "limit" in resp.json()["error"]
    small = raw_http(fuzz_chain.port, b"POST", b"/home/alice/w1/c1/evaluate",
                     headers=[(b"Content-Type", b"application/json")], body=b'{"input": "1"}')
    assert small.status == 202, small  # and the gateway serves on

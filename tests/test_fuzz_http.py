"""Fuzzing the gateway's HTTP and WebSocket inputs on a real chain, with hypothesis.

Broker, device and gateway run as real processes (the device with ``EchoBackend``, so that
random input is answered, not executed). The properties:

* HTTP: every request (random and wrong-typed JSON or non-JSON bodies, huge fields, broken
  UTF-8, odd paths and ``since``/``wait`` values) gets an answer below 500, and an error
  answer is JSON ``{"error": "..."}``.
* WebSocket: every frame (random or mutated messages, wrong types, unknown msg_types, binary
  and oversized frames) gets a reply whose refusal is a 4xx, or a close with a code.
* No node dies, the chain still evaluates a cell afterwards, and the resident memory of the
  gateway and the broker grows by less than :data:`MAX_GROWTH_KIB` from after a warm-up to
  after the fuzz run (the numbers are printed at the end of the run).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_clients import Exchange, Response, raw_http, ws_exchange
from fuzzing import COUNTS, NOTES, examples, fuzz_settings, rss_kib, timeout
from fuzz_chain import MAX_BODY, MAX_INPUT, MAX_WS_MESSAGE
from harness import Chain, NodeProcess
from strategies import (Blob, LongText, any_text, broken_utf8, deep_json, depths, json_bytes,
                        mutated, values)

#: Resident memory a node may gain over a fuzz run (after warm-up) before the test fails.
MAX_GROWTH_KIB = 40 * 1024
HTTP_CASES, WS_CASES, WARM_UP = 400, 200, 40

USERS, WORKSHEETS, CELLS = ["alice", "bob"], ["w1", "w2"], ["c1", "c2", "c3"]
WS_USERS = ["carol", "dave"]


# -- HTTP -------------------------------------------------------------------------------------

def quoted(raw: bytes) -> str:
    return urllib.parse.quote_from_bytes(raw, safe="")


segment = st.one_of(
    st.sampled_from(USERS + WORKSHEETS + CELLS),
    st.text(min_size=1, max_size=12).map(lambda t: quoted(t.encode())),
    broken_utf8().filter(bool).map(quoted),
    st.sampled_from(["..", ".", "%2e%2e", "%00", "%2F", "a" * 201, "%C0%AF", "%", "%zz", "~"]),
)
pool_cell = st.tuples(st.sampled_from(USERS), st.sampled_from(WORKSHEETS), st.sampled_from(CELLS))
number = st.one_of(
    st.integers(-5, 2**70).map(str),
    st.sampled_from(["", "nan", "NaN", "inf", "-inf", "1e400", "-0", "0x10", " 3", "1_0",
                     "\u0663", "9" * 5000, str(2**63), str(2**63 - 1), str(2**64), "1.5",
                     "true", "[]", "%00", "%FF"]),
    any_text.map(lambda t: quoted(t.encode("utf-8", "surrogatepass"))),
)
small_wait = st.one_of(st.sampled_from(["0", "0.01", "-1", "nan", "abc", "", "1e-9", "%FF"]),
                       st.floats(0, 0.05).map(str))


@st.composite
def cell_path(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        user, worksheet, cell = draw(pool_cell)
    else:
        user, worksheet, cell = draw(segment), draw(segment), draw(segment)
    action = draw(st.one_of(
        st.sampled_from(["evaluate", "update", "interrupt", "interact", "restart"]),
        st.builds(lambda n, s: f"files/{n}/{s}", st.integers(0, 10**18), segment),
        segment))
    path = f"/home/{user}/{worksheet}/{cell}/{action}"
    params = draw(st.lists(st.tuples(st.sampled_from(["since", "wait", "token", "x"]),
                                     st.one_of(number, small_wait)), max_size=3))
    params = [(k, v) for k, v in params if k != "wait" or v in SMALL_WAITS or _small(v)]
    if params:
        path += "?" + "&".join(f"{k}={urllib.parse.quote(v, safe='%')}" for k, v in params)
    return path


SMALL_WAITS = {"0", "0.01", "-1", "nan", "abc", "", "1e-9", "%FF", "NaN", "-inf", "-0"}


def _small(value: str) -> bool:
    """Long-poll waits kept short: the fuzz is about parsing, not about waiting."""
    try:
        return float(value) <= 0.05
    except ValueError:
        return True


other_path = st.one_of(
    st.sampled_from(["/", "/health", "/ws", "/home", "/home/alice", "/home/a/b/c",
                     "/static/cellbus.js", "/static/../setup.cfg", "/embed-example", "//",
                     "/home/alice/w1/c1/update/extra", "/%FF", "/home/%ED%A0%80/w/c/update"]),
    st.lists(segment, min_size=1, max_size=5).map(lambda s: "/" + "/".join(s)),
)

content_type = st.sampled_from([None, b"application/json", b"application/json; charset=latin-1",
                                b"application/x-www-form-urlencoded",
                                b"multipart/form-data; boundary=xyz", b"multipart/form-data",
                                b"text/plain", b"application/octet-stream", b"\xff\xfe"])


VALID_BODIES = [b'{"input": "print(1)"}', b'{"interact_id": "i1", "values": {"x": 1}, "state": 3}',
                b"input=print%281%29"]


@st.composite
def body(draw: st.DrawFn) -> bytes | None:
    kind = draw(st.sampled_from(["none", "input", "interact", "json", "deep", "bytes", "utf8",
                                 "form", "big", "huge", "surrogate", "mutated", "mutated"]))
    if kind == "none":
        return None
    if kind == "input":
        return json_bytes({"input": draw(st.one_of(any_text, values(binary=False)))})
    if kind == "interact":
        return json_bytes({"interact_id": draw(values(binary=False)),
                           "values": draw(values(binary=False)),
                           "state": draw(st.one_of(st.integers(-(2**70), 2**70),
                                                   values(binary=False)))})
    if kind == "json":
        return json_bytes(draw(values(binary=False)))
    if kind == "deep":
        depth = draw(depths)
        nested = deep_json(depth)
        return Blob(b'{"input": "1", "values": ' + nested + b', "x": ' + nested + b"}")
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "utf8":
        return b'{"input": "' + draw(broken_utf8()) + b'"}'
    if kind == "mutated":
        return draw(st.sampled_from(VALID_BODIES).flatmap(mutated))
    if kind == "form":
        return b"input=" + quoted(draw(st.binary(max_size=60))).encode()
    if kind == "surrogate":
        return b'{"input": "a\\ud800b", "interact_id": "\\udfff", "values": {"\\ud83d": 1}, ' \
               b'"state": 1}'
    size = draw(st.sampled_from([MAX_INPUT - 20, MAX_INPUT + 1, 3 * MAX_INPUT])
                if kind == "big" else st.sampled_from([MAX_BODY + 1, 2 * MAX_BODY]))
    return Blob(json_bytes({"input": "x" * size}))


any_method = st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD",
                              b"OPTIONS", b"PROPFIND"])


@st.composite
def api_call(draw: st.DrawFn) -> tuple[bytes, str, bytes | None, bytes | None]:
    """A well-aimed call (a pool cell, the right method, JSON) with a fuzzed body or query:
    most of the cases, so that hostile values reach the handlers, not just the router."""
    user, worksheet, cell = draw(pool_cell)
    action = draw(st.sampled_from(["evaluate", "evaluate", "interact", "interact", "update",
                                   "interrupt", "restart", "files/1/x.png"]))
    method = b"GET" if action in ("update", "files/1/x.png") else b"POST"
    path = f"/home/{user}/{worksheet}/{cell}/{action}"
    if method == b"GET":
        params = draw(st.lists(st.tuples(st.sampled_from(["since", "wait"]), number),
                               min_size=1, max_size=2))
        params = [(k, v) for k, v in params if k != "wait" or _small(v)]
        path += "?" + "&".join(f"{k}={urllib.parse.quote(v, safe='%')}" for k, v in params)
        return method, path, None, None
    ctype = draw(st.one_of(st.just(b"application/json"), content_type))
    return method, path, ctype, draw(body())


http_request = st.one_of(
    api_call(), api_call(),
    st.tuples(any_method, st.one_of(cell_path(), other_path), content_type, body()),
)


def check_http(chain: Chain, request: tuple[bytes, str, bytes | None, bytes | None]) -> Response:
    method, path, ctype, data = request
    headers = [(b"Content-Type", ctype)] if ctype is not None else []
    resp = raw_http(chain.port, method, path.encode("latin-1"), body=data, headers=headers)
    where = f"{method.decode()} {path[:200]} ({ctype!r}, {len(data or b'')} bytes)"
    STATUSES[resp.status] += 1
    NOTES["http answers"] = ", ".join(f"{n}x {code}" for code, n in sorted(STATUSES.items()))
    assert resp.status != 0, f"{where}: the gateway closed the connection without answering"
    assert resp.status < 500, f"{where}: {resp.status} {resp.body[:300]!r}"
    if resp.status >= 400 and method != b"HEAD":
        assert resp.headers.get("content-type", "").startswith("application/json"), (
            f"{where}: {resp.status} answered with {resp.headers.get('content-type')}: "
            f"{resp.body[:200]!r}")
        doc = resp.json()
        assert isinstance(doc, dict) and isinstance(doc.get("error"), str), (where, doc)
    return resp


def run_http(chain: Chain, cases: int, name: str, *, fixed: bool = False) -> None:
    @fuzz_settings(cases, fixed=fixed)
    @given(request=http_request)
    def fuzz(request: tuple[bytes, str, bytes | None, bytes | None]) -> None:
        COUNTS[name] += 1
        with slowest(name, request):
            check_http(chain, request)

    fuzz()


# -- WebSocket --------------------------------------------------------------------------------

ws_names = st.one_of(st.sampled_from(WS_USERS + WORKSHEETS + CELLS), values(binary=False),
                     st.sampled_from(["", "x" * 201]))
ws_types = st.one_of(st.sampled_from(["subscribe_request", "subscribe_request",
                                      "execute_request", "execute_request", "interact_request",
                                      "interrupt_request", "restart_request",
                                      "kernel_info_request", "shutdown_request",
                                      "device_register", "", "error_reply"]),
                     values(binary=False))


@st.composite
def ws_message(draw: st.DrawFn) -> Any:
    msg_type = draw(ws_types)
    good_address = draw(st.booleans())
    address = {"user": draw(st.sampled_from(WS_USERS)), "worksheet": draw(
        st.sampled_from(WORKSHEETS)), "cell_id": draw(st.sampled_from(CELLS))} if good_address \
        else {k: draw(ws_names) for k in ("user", "worksheet", "cell_id")}
    content = draw(st.one_of(
        st.fixed_dictionaries({"user": st.just(address["user"]),
                               "worksheet": st.just(address["worksheet"])},
                              optional={"since": st.one_of(st.integers(-5, 2**70),
                                                           values(binary=False)),
                                        "session": values(binary=False)}),
        st.fixed_dictionaries({}, optional={"code": st.one_of(any_text, values(binary=False)),
                                            "interact_id": values(binary=False),
                                            "values": values(binary=False),
                                            "state": st.integers(-(2**70), 2**70)}),
        values(binary=False)))
    header = draw(st.one_of(
        st.just({"msg_type": msg_type}),
        st.fixed_dictionaries({"msg_type": st.just(msg_type)}, optional={
            "msg_id": st.one_of(any_text, values(binary=False)),
            "session": any_text, "username": any_text, "date": any_text, "version": any_text,
            "header": values(binary=False)}),
        values(binary=False)))
    metadata = draw(st.one_of(st.just({"cellbus": address}),
                              st.fixed_dictionaries({"cellbus": values(binary=False)}),
                              values(binary=False)))
    msg = {"header": header, "content": content, "metadata": metadata}
    if draw(st.booleans()):
        msg["msg_type"] = msg_type
    for key in draw(st.lists(st.sampled_from(list(msg)), max_size=2)):
        msg.pop(key, None)  # missing parts
    return msg


VALID_FRAMES = [json_bytes(m) for m in (
    {"header": {"msg_type": "subscribe_request"}, "content": {"user": "carol",
                                                               "worksheet": "w1", "since": 0}},
    {"header": {"msg_type": "execute_request", "msg_id": "m" * 32, "session": "s",
                "username": "u", "date": "d", "version": "5.4"}, "content": {"code": "1"},
     "metadata": {"cellbus": {"user": "dave", "worksheet": "w2", "cell_id": "c1"}}},
    {"header": {"msg_type": "interact_request"}, "content": {"interact_id": "i", "values": {},
                                                              "state": 1},
     "metadata": {"cellbus": {"user": "carol", "worksheet": "w1", "cell_id": "c2"}}})]
mutated_frame = st.sampled_from(VALID_FRAMES).flatmap(mutated).flatmap(
    lambda raw: st.sampled_from([raw, raw.decode("utf-8", "replace")]))

ws_frame = st.one_of(
    mutated_frame, mutated_frame,
    ws_message().map(lambda m: json_bytes(m).decode()),
    ws_message().map(lambda m: json_bytes(m).decode()),
    values(binary=False).map(lambda v: json_bytes(v).decode()),
    any_text.map(lambda t: t.encode("utf-8", "surrogatepass").decode("utf-8", "replace")),
    st.binary(max_size=100),
    broken_utf8(),
    depths.map(lambda d: LongText(deep_json(d).decode())),
    st.just('{"header": {"msg_type": "execute_request"}, "content": {"code": "\\ud800"}, '
            '"metadata": {"cellbus": {"user": "carol", "worksheet": "w1", "cell_id": "c1"}}}'),
    st.sampled_from([MAX_WS_MESSAGE - 100, MAX_WS_MESSAGE + 1]).map(
        lambda n: LongText(json.dumps({"header": {"msg_type": "execute_request"}, "content": {
            "code": "x" * n}, "metadata": {"cellbus": {"user": "carol", "worksheet": "w2",
                                                        "cell_id": "c3"}}}))),
)


def check_exchange(frames: list[str | bytes], result: Exchange) -> None:
    where = [f[:120] for f in frames]
    for reply in result.replies:
        got = reply.get("content")
        said: dict[str, Any] = got if isinstance(got, dict) else {}
        REPLIES["ok" if said.get("ok") else str(said.get("http_status"))] += 1
    REPLIES[f"close {result.code}" if result.closed else "open"] += 1
    NOTES["ws replies"] = ", ".join(f"{n}x {k}" for k, n in sorted(REPLIES.items()))
    for reply in result.replies:
        content = reply.get("content")
        assert isinstance(content, dict) and isinstance(content.get("ok"), bool), (where, reply)
        if not content["ok"]:
            status = content.get("http_status")
            assert isinstance(status, int) and 400 <= status < 500, (
                f"{status} {content.get('error')!r} for {where}")
            assert isinstance(content.get("error"), str), (where, reply)
    if result.closed:
        assert result.code is not None, f"{where}: closed without a close frame (a crash)"
        assert result.code in (1000, 1009), (where, result.code, result.reason)


def run_ws(chain: Chain, cases: int, name: str, *, fixed: bool = False) -> None:
    @fuzz_settings(cases, fixed=fixed)
    @given(frames=st.lists(ws_frame, min_size=1, max_size=3))
    def fuzz(frames: list[str | bytes]) -> None:
        COUNTS[name] += 1
        with slowest(name, frames):
            check_exchange(frames, asyncio.run(ws_exchange(chain.port, frames)))

    fuzz()


@contextlib.contextmanager
def slowest(name: str, case: Any) -> Iterator[None]:
    """Time one case; the slowest of each target is reported at the end of the run."""
    started = time.monotonic()
    yield
    took = time.monotonic() - started
    if took > SLOWEST.get(name, (0.0, ""))[0]:
        SLOWEST[name] = (took, repr(case)[:300])
        NOTES[f"{name} slowest case"] = f"{took:.2f} s: {SLOWEST[name][1]}"


SLOWEST: dict[str, tuple[float, str]] = {}
STATUSES: collections.Counter[int] = collections.Counter()
REPLIES: collections.Counter[str] = collections.Counter()


# -- the tests --------------------------------------------------------------------------------

def nodes_of(chain: Chain) -> dict[str, NodeProcess]:
    assert chain.broker is not None and chain.gateway is not None
    return {"gateway": chain.gateway, "broker": chain.broker, "device": chain.devices[0]}


def still_serving(chain: Chain) -> None:
    """Every node alive, and a cell still evaluates end to end."""
    for name, node in nodes_of(chain).items():
        assert node.proc.poll() is None, f"the {name} died:\n{node.log[-3000:]}"
        crashes = [line for line in node.log.splitlines()
                   if "Traceback" in line or "Uncaught exception" in line or " ERROR " in line]
        assert not crashes, f"the {name} logged errors:\n" + "\n".join(crashes[:20])
    status, reply = chain.evaluate("alice/after/check", "print(1)")
    assert status == 202, reply
    assert chain.wait_done("alice/after/check")["status"] == "done"


def memory(chain: Chain) -> dict[str, int]:
    return {name: rss_kib(node.proc.pid) for name, node in nodes_of(chain).items()
            if name != "device"}


def check_memory(name: str, before: dict[str, int], after: dict[str, int], cases: int) -> None:
    NOTES[f"{name} memory"] = ", ".join(
        f"{node} RSS {before[node] / 1024:.1f} -> {after[node] / 1024:.1f} MiB "
        f"({(after[node] - before[node]) / 1024:+.1f})" for node in before) + \
        f" over {cases} cases after a warm-up of {WARM_UP}"
    for node in before:
        assert after[node] - before[node] < MAX_GROWTH_KIB, NOTES[f"{name} memory"]


@pytest.mark.timeout(timeout(HTTP_CASES, 120))
def test_http_inputs_get_4xx_json_or_success(fuzz_chain: Chain) -> None:
    """Random HTTP requests: never a 5xx, errors are JSON, nodes live, memory stays flat."""
    run_http(fuzz_chain, WARM_UP, "http.warm-up", fixed=True)
    before = memory(fuzz_chain)
    run_http(fuzz_chain, HTTP_CASES, "http")
    after = memory(fuzz_chain)
    still_serving(fuzz_chain)
    check_memory("http", before, after, examples(HTTP_CASES))


@pytest.mark.timeout(timeout(WS_CASES, 120))
def test_websocket_inputs_get_a_reply_or_a_clear_close(fuzz_chain: Chain) -> None:
    """Random WebSocket frames: a reply (refusals are 4xx) or a close with a code; nodes
    live, memory stays flat."""
    run_ws(fuzz_chain, WARM_UP, "ws.warm-up", fixed=True)
    before = memory(fuzz_chain)
    run_ws(fuzz_chain, WS_CASES, "ws")
    after = memory(fuzz_chain)
    still_serving(fuzz_chain)
    check_memory("ws", before, after, examples(WS_CASES))

"""Clients that do not read: the gateway's memory stays bounded, it closes their WebSockets
with code 4008 (they resume from the store by seq) and drops their stalled long-polls."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fuzzing import rss_kib
from harness import Chain, wait_gateway_linked
from raw_ws import CLOSE, TEXT, RawSocket

TOO_SLOW = 4008
#: The gateway's --client-buffer in these tests: small, so that a modest flood passes it.
CLIENT_BUFFER = 1024 * 1024
#: The flood: numbered lines of about 1 KB each, some 16 MB in all.
LINES = 16_000
FLOOD = f"for i in range({LINES}): print(f'{{i:06d}} ' + 'x' * 993)"
SLOW_CLIENTS = 4
#: Bytes of receive buffer a slow client asks the kernel for: it holds little, so the
#: gateway soon has to keep (or refuse to keep) what the client does not take.
SMALL_RCVBUF = 16 * 1024
MIB = 1024


def expected_text() -> str:
    return "".join(f"{i:06d} " + "x" * 993 + "\n" for i in range(LINES))


@contextmanager
def peak_rss(pid: int) -> Iterator[list[int]]:
    """Samples the RSS of ``pid`` (KiB) every 20 ms while the block runs; yields [peak]."""
    peak = [rss_kib(pid)]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], rss_kib(pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join(5)


def subscribe(port: int, *, since: int = 0, session: str | None = None,
              rcvbuf: int | None = None) -> tuple[RawSocket, list[dict[str, Any]]]:
    """A raw socket subscribed to u/flood; returns it and what came before the reply."""
    ws = RawSocket(port, rcvbuf=rcvbuf)
    content: dict[str, Any] = {"user": "u", "worksheet": "flood", "since": since}
    if session is not None:
        content["session"] = session
    ws.send_json("subscribe_request", content)
    got = read_until(ws, lambda m: m["msg_type"] == "subscribe_reply")
    assert got[-1]["content"]["ok"], got[-1]
    return ws, got[:-1]


def read_until(ws: RawSocket, predicate: Any, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    got: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        frame = ws.read_frame(deadline - time.monotonic())
        assert frame is not None, f"socket ended after {[m['msg_type'] for m in got[-5:]]}"
        if frame[0] != 0x1:
            continue
        got.append(json.loads(frame[1]))
        if predicate(got[-1]):
            return got
    raise AssertionError(f"nothing matched within {timeout} s")


def follow(port: int, until: Any, ws: RawSocket | None = None, *, since: int = 0,
           session: str | None = None, timeout: float = 60) -> list[dict[str, Any]]:
    """What a client that reads gets of u/flood (on ``ws``, or a new subscription from
    ``since``) up to a message that matches ``until``. Like cellbus.js, after a 4008 close
    (on a loaded machine even this reader can fall behind) it subscribes again from the last
    seq it has."""
    deadline = time.monotonic() + timeout
    got: list[dict[str, Any]] = []
    while True:
        if ws is None:
            ws, replayed = subscribe(port, since=since, session=session)
            got += replayed
            if any(map(until, replayed)):
                ws.close()
                return got
        while (frame := ws.read_frame(deadline - time.monotonic())) and frame[0] != CLOSE:
            if frame[0] == TEXT:
                got.append(json.loads(frame[1]))
                if until(got[-1]):
                    ws.close()
                    return got
        ws.close()
        ws = None
        assert frame is not None and frame[1][:2] == TOO_SLOW.to_bytes(2, "big"), frame
        facts = with_seq(got)[-1]["metadata"]["cellbus"]
        since, session = facts["seq"], facts["session"]


def is_idle(msg: dict[str, Any]) -> bool:
    return msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"


def stream_text(msgs: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")


def with_seq(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in msgs if "seq" in m["metadata"].get("cellbus", {})]


def test_websockets_that_do_not_read_are_closed_and_resume_by_seq(chain: Chain) -> None:
    """Four sockets subscribe and never read while a cell prints 16 MB: the gateway's memory
    stays bounded, each is closed with 4008, memory falls back after, and each resumes from
    its last seq with every line exactly once."""
    chain.start_broker("--cell-output", str(32 * 2**20))  # keeps all 16 MB
    chain.start_device()
    gateway = chain.start_gateway("--client-buffer", str(CLIENT_BUFFER))
    wait_gateway_linked(chain)
    pid = gateway.proc.pid
    reader, _ = subscribe(chain.port)
    slow = [subscribe(chain.port, rcvbuf=SMALL_RCVBUF)[0] for _ in range(SLOW_CLIENTS)]
    baseline = rss_kib(pid)
    with peak_rss(pid) as peak:
        status, accepted = chain.evaluate("u/flood/1", FLOOD)
        assert status == 202, accepted
        everything = follow(chain.port, is_idle, reader)
        endings = [ws.read_to_end(timeout=30) for ws in slow]
    print(f"gateway RSS: baseline {baseline // MIB} MiB, peak {peak[0] // MIB} MiB")
    assert stream_text(everything) == expected_text()
    assert [e.code for e in endings] == [TOO_SLOW] * SLOW_CLIENTS, [e.reason for e in endings]
    # Without a bound each socket held what it did not read (measured: 35 -> 87 MiB).
    assert peak[0] - baseline < 20 * MIB, f"{baseline} -> {peak[0]} KiB"
    session = with_seq(everything)[0]["metadata"]["cellbus"]["session"]
    for ws, ending in zip(slow, endings):
        ws.close()
        got = with_seq(ending.messages)
        seqs = [m["metadata"]["cellbus"]["seq"] for m in got]
        assert seqs == list(range(1, len(seqs) + 1))  # what came before the close, in order
        rest = follow(chain.port, is_idle, since=seqs[-1] if seqs else 0, session=session)
        both = [m["metadata"]["cellbus"]["seq"] for m in with_seq(got + rest)]
        assert both == list(range(1, len(both) + 1))  # every message once, in order
        assert stream_text(got + rest) == expected_text()
    # Before the heap was trimmed after a departure, the resumes left it 12 MiB up.
    settled = wait_rss_below(pid, baseline + 8 * MIB)
    print(f"gateway RSS after the clients closed: {settled // MIB} MiB")


def wait_rss_below(pid: int, limit: int, timeout: float = 15) -> int:
    """RSS (KiB) once it is under ``limit``; fails if it does not get there in time."""
    deadline = time.monotonic() + timeout
    while (rss := rss_kib(pid)) >= limit:
        if time.monotonic() > deadline:
            raise AssertionError(f"RSS stays at {rss // MIB} MiB (limit {limit // MIB} MiB)")
        time.sleep(0.1)
    return rss


def stalled_long_poll(port: int, path: str) -> socket.socket:
    """A long-poll whose client never reads the answer (a small receive buffer, unread)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    return sock


def read_all(sock: socket.socket, timeout: float = 30) -> bytes:
    """Everything until the server ends the connection (fails if it does not in time)."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def test_long_polls_that_do_not_read_are_dropped(chain: Chain) -> None:
    """Four long-polls ask for a 16 MB answer and never read it: the gateway drops each after
    --client-stall seconds and its memory falls back to what it was after serving the
    answer once."""
    chain.start_broker("--cell-output", str(32 * 2**20))  # keeps all 16 MB
    chain.start_device()
    gateway = chain.start_gateway("--client-stall", "2")
    wait_gateway_linked(chain)
    reader, _ = subscribe(chain.port)
    assert chain.evaluate("u/flood/1", FLOOD)[0] == 202
    follow(chain.port, is_idle, reader)
    status, doc = chain.update("u/flood/1")  # a client that reads gets the answer whole
    assert status == 200 and doc["output"]["stdout_0"]["content"] == expected_text()
    del doc
    pid = gateway.proc.pid
    baseline = rss_kib(pid)  # after one such answer
    stalled = [stalled_long_poll(chain.port, "/home/u/flood/1/update?since=0&wait=5")
               for _ in range(SLOW_CLIENTS)]
    deadline = time.monotonic() + 30
    while gateway.log.count("dropping a long-poll") < SLOW_CLIENTS:
        assert time.monotonic() < deadline, gateway.log[-2000:]
        time.sleep(0.1)
    for sock in stalled:
        head, _, body = read_all(sock).partition(b"\r\n\r\n")
        sock.close()
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        assert len(body) < length  # cut off: the client asks again
    # Before, each held its answer for as long as it stayed open (measured: 37 -> 81 MiB).
    settled = wait_rss_below(pid, baseline + 8 * MIB)
    print(f"gateway RSS: {baseline // MIB} MiB before the long-polls, {settled // MIB} after")
    assert "Traceback" not in gateway.log and " ERROR " not in gateway.log, gateway.log[-3000:]


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_clients_that_close_mid_reply_leave_no_traceback(chain: Chain) -> None:
    """Sockets that subscribe to a worksheet with 2 MB of history and close at once (reset
    or closed, before or after the first message) while the gateway writes the replay:
    no "Task exception was never retrieved", no traceback, nothing left open."""
    chain.start_broker()
    chain.start_device()
    gateway = chain.start_gateway()
    wait_gateway_linked(chain)
    history = "for i in range(2000): print(f'{i:06d} ' + 'x' * 993)"
    assert chain.evaluate("u/flood/1", history)[0] == 202
    assert chain.wait_done("u/flood/1")["status"] == "done"
    pid = gateway.proc.pid
    fds = open_fds(pid)
    for n in range(80):
        ws = RawSocket(chain.port, rcvbuf=SMALL_RCVBUF)
        ws.send_json("subscribe_request", {"user": "u", "worksheet": "flood", "since": 0})
        if n % 2:
            ws.read_frame()
        ws.abort() if n % 4 < 2 else ws.close()
    deadline = time.monotonic() + 20
    while open_fds(pid) > fds:  # every connection released
        assert time.monotonic() < deadline, f"{open_fds(pid)} fds open, {fds} before"
        time.sleep(0.05)
    ws, replayed = subscribe(chain.port)  # the gateway still serves, after all that
    ws.close()
    assert stream_text(replayed) == "".join(f"{i:06d} " + "x" * 993 + "\n" for i in range(2000))
    log = gateway.log
    assert "Traceback" not in log and "never retrieved" not in log, log[-3000:]
    assert " ERROR " not in log, log[-3000:]

"""Slow, idle and numerous connections cannot take the gateway down: unfinished headers and
bodies are timed out, one address holds at most --max-per-address connections (WebSockets
included), the open-file limit is raised at start, and running out of descriptors is logged
at a bounded rate and recovered from."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness import Chain, until
from raw_ws import CLOSE, PING, RawSocket

PARTIAL_HEADERS = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: b\r\n"
PARTIAL_BODY = (b"POST /home/u/w/1/evaluate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"input\": ")


@contextmanager
def sockets(port: int, n: int, send: bytes) -> Iterator[list[socket.socket]]:
    """``n`` connections to the gateway, each having sent ``send`` and nothing more."""
    opened: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(send)
            opened.append(s)
        yield opened
    finally:
        for s in opened:
            s.close()


def ended(s: socket.socket, timeout: float) -> bytes:
    """What the gateway sent before it closed ``s`` (AssertionError if it kept it open)."""
    s.settimeout(timeout)
    got = b""
    try:
        while chunk := s.recv(4096):
            got += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the gateway kept the connection open {timeout} s") from None
    return got


def health(chain: Chain) -> int:
    try:
        return chain.http("GET", "/health", timeout=5)[0]
    except OSError:
        return 0


def test_unfinished_requests_time_out_and_one_address_is_capped(chain: Chain) -> None:
    chain.start_broker()
    chain.start_gateway("--idle-timeout", "1", "--body-timeout", "1",
                        "--max-per-address", "40")
    with sockets(chain.port, 20, PARTIAL_HEADERS) as headers, \
            sockets(chain.port, 20, PARTIAL_BODY) as bodies:
        extra = socket.create_connection(("127.0.0.1", chain.port), timeout=10)
        answer = ended(extra, 5)  # over the cap: refused at once, before it sends anything
        extra.close()
        assert answer.startswith(b"HTTP/1.1 503 ") and b"too many connections" in answer, answer
        start = time.monotonic()
        for s in headers + bodies:  # both kinds closed by their deadline (1 s, with slack)
            assert ended(s, 10) == b"", "an unfinished request got an answer"
        assert time.monotonic() - start < 10
    assert until(lambda: health(chain) == 200, "health answered after the timeouts")
    chain.gateway.wait_for_log(r"refused a connection from 127\.0\.0\.1: it holds 40 already "
                               r"\(--max-per-address\) \(1 times")
    # WebSockets count too: 40 open ones fill the cap.
    ws = [RawSocket(chain.port) for _ in range(40)]
    try:
        extra = socket.create_connection(("127.0.0.1", chain.port), timeout=10)
        assert ended(extra, 5).startswith(b"HTTP/1.1 503 ")
        extra.close()
    finally:
        for w in ws:
            w.close()
    assert until(lambda: health(chain) == 200, "health answered once the sockets closed")


def test_running_out_of_descriptors_is_logged_at_a_bounded_rate(chain: Chain) -> None:
    """With too few descriptors (a hard limit of 160), accept fails: the gateway logs one line
    per interval instead of one per attempt, and serves again once connections time out."""
    chain.start_broker()
    gateway = chain.start_gateway("--idle-timeout", "3", "--max-per-address", "0",
                                  wrap=["prlimit", "--nofile=160:160", "--"])
    with sockets(chain.port, 250, PARTIAL_HEADERS):
        gateway.wait_for_log(r"cannot accept connections: Too many open files")
        assert until(lambda: health(chain) == 200, "health answered while flooded", 20)
    lines = [line for line in gateway.log.splitlines() if "Too many open files" in line]
    assert 1 <= len(lines) <= 3, lines[:5]


def test_the_open_file_limit_is_raised_to_the_hard_limit(chain: Chain) -> None:
    chain.start_broker()
    gateway = chain.start_gateway(wrap=["prlimit", "--nofile=256:4096", "--"])
    gateway.wait_for_log(r"open-file limit 4096 \(hard 4096\)")
    limits = Path(f"/proc/{gateway.proc.pid}/limits").read_text()
    found = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits)
    assert found is not None and found.groups() == ("4096", "4096"), limits


def test_a_websocket_that_never_answers_is_closed(chain: Chain) -> None:
    """A client that completes the handshake and then sends nothing, not even the pong to
    the gateway's ping (every --idle-timeout seconds, here 1), loses its connection."""
    chain.start_broker()
    chain.start_gateway("--idle-timeout", "1")
    silent = RawSocket(chain.port)
    start = time.monotonic()
    opcodes = []
    while (frame := silent.read_frame(timeout=15)) is not None and frame[0] != CLOSE:
        opcodes.append(frame[0])
    silent.close()
    assert PING in opcodes and time.monotonic() - start < 10, opcodes

"""Request headers over 64 KiB get ``431 Request Header Fields Too Large`` with a JSON error,
not a connection reset (tornado's own answer at its ``max_header_size``)."""

from __future__ import annotations

import json
import socket

import pytest

from harness import Chain


def exchange(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Send ``request`` whole and read the answer until the gateway closes the connection
    (a reset at any point ends it with what came)."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(request)
            while chunk := s.recv(65536):
                got += chunk
        except (ConnectionResetError, BrokenPipeError) as e:
            return got or f"reset: {e}".encode()
    return got


def request(method: str, header_bytes: int, body: bytes = b"") -> bytes:
    """A request whose header block is about ``header_bytes`` long (in 4 KiB headers)."""
    lines = [f"{method} /health HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
             f"Content-Length: {len(body)}", "Content-Type: application/json"]
    n = 0
    while sum(len(line) + 2 for line in lines) < header_bytes:
        lines.append(f"X-Pad-{n}: " + "a" * 4000)
        n += 1
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture
def gateway(chain: Chain) -> Chain:
    chain.start_broker()
    chain.start_gateway()
    return chain


@pytest.mark.parametrize(("method", "size"), [("GET", 70_000), ("GET", 200_000),
                                              ("POST", 100_000)])
def test_headers_over_the_limit_get_431(gateway: Chain, method: str, size: int) -> None:
    """A header block past 64 KiB (a POST's body behind it too) is answered 431 with the
    limit in a JSON error, and the connection is closed cleanly; the gateway goes on."""
    body = json.dumps({"input": "x" * 50_000}).encode() if method == "POST" else b""
    answer = exchange(gateway.port, request(method, size, body))
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), answer[:300]
    assert b"Connection: close" in head
    assert "65536 bytes" in json.loads(rest)["error"]
    assert gateway.http("GET", "/health")[0] == 200


def test_headers_under_the_limit_are_served(gateway: Chain) -> None:
    """60 KB of headers is still a request like any other."""
    answer = exchange(gateway.port, request("GET", 60_000))
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]

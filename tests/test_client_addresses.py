"""Per-address bounds count an IPv6 client by its /64 network (gateway/clientaddr.py): one
host holds a whole /64, so counting exact IPv6 addresses bounded nothing."""

from __future__ import annotations

import asyncio
import socket

import tornado.web
from tornado.iostream import IOStream

from gateway.clientaddr import client_key
from gateway.connections import ConnectionLimits, GuardedServer


def test_client_keys() -> None:
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff:1:2:3") \
        == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key("not an address") == "not an address"


async def test_one_ipv6_network_is_capped_whatever_addresses_it_uses() -> None:
    """Tests that with --max-per-address 2, a third connection from another address of the
    same /64 is refused with 503 (real streams over socket pairs; only the peer address is
    made up), while one from another /64 is taken."""
    server = GuardedServer(tornado.web.Application(),
                           limits=ConnectionLimits(per_address=2))
    pairs = [socket.socketpair() for _ in range(4)]
    try:
        for (ours, _), peer in zip(pairs, ["2001:db8::1", "2001:db8::2", "2001:db8::3",
                                           "2001:db8:0:1::1"]):
            ours.setblocking(False)
            server.handle_stream(IOStream(ours), (peer, 443, 0, 0))
        answers = await asyncio.gather(*(asyncio.to_thread(ask, pairs[i][1]) for i in (2, 3)))
        assert answers[0].startswith(b"HTTP/1.1 503 "), answers  # the /64's third: refused
        assert answers[1].startswith(b"HTTP/1.1 404 "), answers  # another /64's: served
    finally:
        server.stop()
        await server.close_all_connections()
        for pair in pairs:
            for s in pair:
                s.close()


def ask(sock: socket.socket) -> bytes:
    """A request on ``sock`` and the start of its answer."""
    sock.settimeout(10)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    except OSError:
        pass  # refused and closed already: its answer is still to read
    return sock.recv(4096)

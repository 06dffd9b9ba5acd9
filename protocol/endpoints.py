"""Which IP family a TCP endpoint of the bus takes, and what a failed bind means in words.

libzmq sockets speak IPv4 only unless their ``IPV6`` option is on: a broker given
``--gateway-bind tcp://[fd00::5]:5555`` stopped with "No such device", and a device given
``--connect tcp://[fd00::5]:5556`` never connected, saying nothing but "no link after 5 s".
With the option on, libzmq resolves a name to its IPv6 address only (IPv4 ones mapped when
it has none): a name with both kinds of address would then go to the IPv6 one, where a
broker bound to ``0.0.0.0`` does not listen. So the option is on for what needs it only:
an IPv6 address in brackets, ``*`` in a bind (then ``[::]``: both families), and a name
that has IPv6 addresses and no IPv4 one when the node starts.
"""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import zmq


def host_of(endpoint: str) -> str | None:
    """The host of a ``tcp://HOST:PORT`` endpoint (without brackets); None for others, and
    for one that is not well formed (libzmq says what is wrong with it)."""
    if not endpoint.startswith("tcp://"):
        return None
    try:
        host = urlsplit(endpoint).hostname
    except ValueError:
        return None
    if host is None and endpoint.startswith("tcp://*:"):
        return "*"
    return host


def wants_ipv6(endpoint: str, *, bind: bool) -> bool:
    """Whether a socket binding (``bind``) or connecting to ``endpoint`` needs IPv6 on."""
    host = host_of(endpoint)
    if host is None:
        return False
    if host == "*":
        return bind
    if ":" in host:
        return True
    return _ipv6_only(host)


def _ipv6_only(name: str) -> bool:
    """A name (or an IPv4 address: False) that resolves to IPv6 addresses and no IPv4 one."""
    try:
        socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
        return False
    except (OSError, UnicodeError):
        pass
    try:
        return bool(socket.getaddrinfo(name, None, socket.AF_INET6, socket.SOCK_STREAM))
    except (OSError, UnicodeError):
        return False


def endpoint_problem(error: zmq.ZMQError, bind: str | None) -> str:
    """What a failed bind or connect means in words: libzmq says "No such device" for a bind
    to a name that does not resolve (or to an IPv6 address, before sockets took IPv6), and
    "Cannot assign requested address" for an address this machine does not have."""
    if bind and error.errno in (errno.ENODEV, errno.EADDRNOTAVAIL):
        return ("its host is not an address of this machine, nor a name that resolves to "
                "one (bind to this machine's own address, a name of it, or 0.0.0.0 / [::] "
                "for all)")
    if error.errno == errno.EINVAL:
        return (f"{error}: an endpoint is tcp://HOST:PORT (an IPv6 address in brackets, "
                "tcp://[fd00::5]:5555), ipc://PATH or inproc://NAME")
    return str(error)

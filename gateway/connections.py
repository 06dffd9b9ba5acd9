"""The gateway's TCP side: bounded connections, however slow or many a client opens.

An idle connection costs a file descriptor and nothing else, so an attacker who opens
thousands and never finishes a request (headers or body) ran the gateway out of descriptors:
it stopped accepting, and asyncio logged every failed ``accept`` (a busy loop: the
listening socket stays readable). :class:`GuardedServer` is tornado's ``HTTPServer`` with

* deadlines: a request's headers must arrive within ``idle_timeout`` seconds of the
  connection's start or of its previous request (tornado's ``idle_connection_timeout``,
  also its header timeout), and its body within ``body_timeout``;
* a cap on the connections one client address holds at once (WebSockets included): past
  it a connection gets a short ``503`` and is closed before anything of it is read;
* an accept loop that survives running out of descriptors: it stops accepting for
  :data:`ACCEPT_PAUSE` seconds and logs one line per :data:`LOG_INTERVAL` with a count.

:func:`raise_fd_limit` lifts the soft descriptor limit to the hard one at start.
"""

from __future__ import annotations

import errno
import logging
import resource
import socket
import time
from asyncio import Future
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, StreamClosedError

from .clientaddr import client_key

log = logging.getLogger("cellbus.gateway")

#: Seconds a connection may take to send a request's headers (or stay idle between two).
IDLE_TIMEOUT: Final = 30.0
#: Seconds a request's body may take to arrive.
BODY_TIMEOUT: Final = 30.0
#: Connections one client address may hold open at once (0: no cap).
PER_ADDRESS: Final = 256
#: Seconds the gateway stops accepting after ``accept`` failed for want of descriptors.
ACCEPT_PAUSE: Final = 0.5
#: Seconds between two log lines about the same kind of trouble (each line gives a count).
LOG_INTERVAL: Final = 10.0
#: accept() errors that mean "no resources now", not "this connection failed".
EXHAUSTED: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: Connections accepted per readable event (tornado's backlog heuristic).
ACCEPT_BATCH: Final = 128
REFUSAL: Final = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                  b"Retry-After: 5\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s")


@dataclass(frozen=True)
class ConnectionLimits:
    """``--idle-timeout``, ``--body-timeout`` and ``--max-per-address``."""

    idle_timeout: float = IDLE_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    per_address: int = PER_ADDRESS


class RateLog:
    """A warning at most once per ``interval`` seconds, counting what it did not log."""

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self.interval, self.count, self.last = interval, 0, -interval

    def warn(self, message: str, *args: Any) -> None:
        """Log ``message % args`` and how many times it happened since the last line."""
        self.count += 1
        now = time.monotonic()
        if now - self.last >= self.interval:
            log.warning(message + " (%d times in the last %.0f s)", *args, self.count,
                        min(now - self.last, self.interval))
            self.count, self.last = 0, now


def raise_fd_limit() -> tuple[int, int]:
    """Lift the soft limit on open files to the hard one; returns (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as e:
            log.warning("gateway: cannot raise the open-file limit from %d to %d: %s",
                        soft, hard, e)
    return soft, hard


class GuardedServer(HTTPServer):
    """tornado's HTTP server with the limits of :class:`ConnectionLimits` (see above)."""

    def initialize(self, request_callback: Any,  # type: ignore[override]
                   limits: ConnectionLimits = ConnectionLimits(), **kwargs: Any) -> None:
        super().initialize(request_callback, idle_connection_timeout=limits.idle_timeout,
                           body_timeout=limits.body_timeout, **kwargs)
        self.limits = limits
        #: Open streams per client address; closed ones are dropped as the address comes back
        #: and by :meth:`_sweep`.
        self.open_streams: dict[str, set[IOStream]] = {}
        self.refused_log, self.accept_log = RateLog(), RateLog()
        self._last_sweep = time.monotonic()

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        ip = client_key(str(address[0])) if isinstance(address, tuple) and address else ""
        if self.limits.per_address > 0:
            self._sweep()
            streams = self.open_streams.setdefault(ip, set())
            streams.difference_update([s for s in streams if s.closed()])
            if len(streams) >= self.limits.per_address:
                return self._refuse(stream, ip)
            streams.add(stream)
        super().handle_stream(stream, address)

    def _sweep(self) -> None:
        """Forget addresses whose connections are all closed (at most every 10 s)."""
        now = time.monotonic()
        if now - self._last_sweep < LOG_INTERVAL:
            return
        self._last_sweep = now
        for ip in list(self.open_streams):
            streams = {s for s in self.open_streams[ip] if not s.closed()}
            if streams:
                self.open_streams[ip] = streams
            else:
                del self.open_streams[ip]

    def _refuse(self, stream: IOStream, ip: str) -> None:
        """A short 503, written without reading the request, and the connection closed."""
        cap = self.limits.per_address
        self.refused_log.warn("gateway: refused a connection from %s: it holds %d already "
                              "(--max-per-address)", ip, cap)
        body = (b'{"error": "too many connections from your address (limit %d); close some '
                b'or retry later"}' % cap)
        def written(future: Future[None]) -> None:
            if not future.cancelled():
                future.exception()  # a client already gone: retrieved, so nothing is logged
            stream.close()

        try:
            stream.write(REFUSAL % (len(body), body)).add_done_callback(written)
        except StreamClosedError:
            stream.close()

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        """tornado's, with :meth:`_accept_handler` instead of ``netutil``'s accept loop."""
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = self._accept_handler(sock)

    def _accept_handler(self, sock: socket.socket) -> Callable[[], None]:
        """Accept on ``sock`` until stopped; returns the function that stops it. Out of
        descriptors, it pauses instead of spinning on a socket that stays readable."""
        loop = IOLoop.current()
        state = {"reading": True, "removed": False}

        def resume() -> None:
            if not state["removed"] and not state["reading"]:
                state["reading"] = True
                loop.add_handler(sock, on_readable, IOLoop.READ)

        def on_readable(fd: Any, events: int) -> None:
            for _ in range(ACCEPT_BATCH):
                if state["removed"]:
                    return
                try:
                    connection, address = sock.accept()
                except BlockingIOError:
                    return
                except ConnectionAbortedError:
                    continue
                except OSError as e:
                    if e.errno not in EXHAUSTED:
                        raise
                    self.accept_log.warn("gateway: cannot accept connections: %s; pausing "
                                         "%.1f s at a time", e.strerror, ACCEPT_PAUSE)
                    loop.remove_handler(sock)
                    state["reading"] = False
                    loop.call_later(ACCEPT_PAUSE, resume)
                    return
                self._handle_connection(connection, address)

        def remove() -> None:
            if state["reading"]:
                loop.remove_handler(sock)
            state["removed"], state["reading"] = True, False

        loop.add_handler(sock, on_readable, IOLoop.READ)
        return remove

"""The base every cellbus node builds on: sockets, background loops, start and graceful stop.

A node owns one ZeroMQ context, the sockets it opened through :meth:`Node.socket` (each a
:class:`~protocol.sockets.BusSocket`, awaited on the node's loop) and the loops it started
through :meth:`Node.spawn`; :mod:`protocol.program` runs one as a program.
"""

from __future__ import annotations

import asyncio
import errno
import collections
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import zmq

from . import msgtypes as mt
from .curve import ClientKeys, ServerKeys, needs_keys
from .endpoints import endpoint_problem, wants_ipv6
from .errors import ConfigError, ProtocolError, address_in_use
from .linkwatch import LinkWatch
from .metrics import NodeMetrics
from .ratelog import RateLog, routing_id
from .rekey import KeyFiles, next_broker_key
from .sockets import BusSocket
from .together import Together
from .version import VERSION
from .wire import DEFAULT_REPLAY_HISTORY, Message, Session


#: Seconds :meth:`Node.cancel_loops` waits before it cancels a loop again.
CANCEL_AGAIN = 1.0

#: ZMTP heartbeats on TCP links (ms): interval, timeout, and the time-to-live the peer is
#: told: a silent partition closes the connection within about 6 s, and ZeroMQ reconnects.
#: Only the connecting side pings: a bound socket ends a connection by the time-to-live its
#: client told it. libzmq 4.3.5 aborts the process (``Assertion failed: !_io_error
#: (src/stream_engine_base.cpp:310)``) when a ping is due on a connection it could not
#: decrypt a message of and whose peer has closed it since: one byte changed on the way
#: from a gateway, which then restarted or made its connection anew, brought the broker down.
ZMTP_HEARTBEAT = (2000, 6000, 6000)
#: A bound socket's TCP keepalive (s: idle, interval, probes): libzmq arms a connection's
#: time-to-live at a ping and disarms it at any message after, so a client host that went
#: away just after a message leaves its connection open; the kernel ends it within ~25 s.
#: (A frozen client process's kernel answers the probes: its connection stays until it ends,
#: and a device started meanwhile under its --device-id is told to check for another one.)
TCP_KEEPALIVE = (10, 5, 3)


def _guarded(sock: BusSocket, endpoint: str) -> str:
    """What a bind line adds for a port other machines may reach: whether it is encrypted."""
    if not needs_keys(endpoint):
        return ""
    if sock.getsockopt(zmq.MECHANISM) == zmq.CURVE:
        return " (CURVE: encrypted)"
    return " (in clear: --insecure-bus)"


class Node:
    """A ZeroMQ node. Subclasses override :meth:`setup` (open sockets, spawn loops) and may
    override :meth:`shutdown` (drain before sockets close)."""

    #: Used for the logger name (``cellbus.<name>``) and in log lines.
    name = "node"

    def __init__(self, session: Session) -> None:
        self.session = session
        self.log = logging.getLogger(f"cellbus.{self.name}")
        self.ctx = zmq.Context()
        self.rejected: collections.Counter[str] = collections.Counter()
        self.reject_log = RateLog(self.log)
        self._sockets: list[BusSocket] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop_requested: asyncio.Event | None = None
        self._stopped = False
        #: A line already said that the node stops, and why (a signal, a crash): its stop
        #: says no more (one event, one line).
        self._stop_said = False
        #: A loop crashed: the node stopped itself and exits non-zero.
        self.crashed = False
        #: The node's Prometheus metrics (subclasses make them), served on ``metrics_port``.
        self.metrics: NodeMetrics | None = None
        self.metrics_port = 0
        #: CURVE keys for TCP endpoints (:mod:`protocol.curve`): the broker's ServerKeys or a
        #: client's ClientKeys; None, which only ipc:// or ``insecure`` allows.
        self.keys: ServerKeys | ClientKeys | None = None
        self.insecure = False
        self._warned_insecure = False
        #: (socket, endpoint) of every connect, undone if the broker revokes this node's key;
        #: of those with CURVE client keys, made again with new keys (:mod:`protocol.rekey`).
        self._connected: list[tuple[BusSocket, str]] = []
        self.curve_links: list[tuple[BusSocket, str]] = []
        self.key_files: KeyFiles | None = None
        #: What each link's connection does (:mod:`protocol.linkwatch`): every connect, and
        #: the broker's CURVE binds.
        self.links: list[LinkWatch] = []
        self._together = Together()  # its links' news of one cause, in one line

    # -- hooks ------------------------------------------------------------------------------

    async def setup(self) -> None:
        """Open sockets and spawn loops. Called once by :meth:`start`."""

    async def shutdown(self) -> None:
        """Finish or hand back work in flight; sockets are still open. Called by :meth:`stop`."""

    # -- sockets and loops ------------------------------------------------------------------

    def socket(self, kind: int, *, bind: str | None = None, connect: str | None = None,
               label: str = "", routing_id: bytes | None = None, role: str = "",
               option: str = "") -> BusSocket:
        """A socket of ``kind`` bound or connected to an endpoint, with linger 0, logged; on
        TCP, encrypted (CURVE, for clients of ``role`` if it binds) with ZMTP heartbeats.
        ``option`` is the command-line option that sets the endpoint: an endpoint in use, or
        a TCP one without keys, is refused in one line that names it."""
        sock = BusSocket(self.ctx, kind)
        sock.linger = 0
        try:
            self.secure(sock, bind or connect, role=role, server=bind is not None,
                        option=option)
        except ConfigError:
            sock.close()
            raise
        if routing_id is not None:
            sock.routing_id = routing_id
        if kind == zmq.ROUTER:
            sock.router_mandatory = True
        what = label or zmq.SocketType(kind).name
        try:
            if bind:
                sock.bind(bind)
                self.log.info("%s bound %s on %s%s", self.name, what,
                              sock.getsockopt_string(zmq.LAST_ENDPOINT), _guarded(sock, bind))
            if connect:
                sock.connect(connect)
                self._connected.append((sock, connect))
                self.log.info("%s connected %s to %s", self.name, what, connect)
        except zmq.ZMQError as e:
            sock.close()
            if bind and e.errno == zmq.EADDRINUSE:
                raise address_in_use(self.name, bind, option or "another endpoint") from None
            raise ConfigError(f"{self.name}: cannot use endpoint {bind or connect}: "
                              f"{endpoint_problem(e, bind)}") from None
        self._sockets.append(sock)
        return sock

    def secure(self, sock: BusSocket, endpoint: str | None, *, role: str = "",
               server: bool = False, option: str = "", watch: bool = True) -> None:
        """Before ``sock`` binds or connects to ``endpoint``: CURVE and heartbeats if the
        endpoint is TCP; a ConfigError if this node has no keys and may not go without,
        naming the ``option`` that gave the endpoint (its default, maybe, not given at all).
        Its connection is watched (:meth:`watch_link`) if it connects, or binds with CURVE;
        ``watch=False``: not, for a second connection to an endpoint watched already."""
        # inproc:// is a socket of this process (the broker's feed monitor): no link to watch,
        # and ZeroMQ reports no connection on it (its "no link after 5 s" was a false alarm).
        if watch and endpoint and not server and not endpoint.startswith("inproc://"):
            self.watch_link(sock, endpoint, server=False,
                            curve=needs_keys(endpoint) and isinstance(self.keys, ClientKeys))
        if not needs_keys(endpoint):
            return
        sock.heartbeat_ivl, sock.heartbeat_timeout, sock.heartbeat_ttl = ZMTP_HEARTBEAT
        if server:  # see ZMTP_HEARTBEAT: its clients' pings and TTL do, and the kernel's
            sock.heartbeat_ivl = 0  # keepalive for a peer whose last message left no TTL
            sock.tcp_keepalive, sock.tcp_keepalive_idle, sock.tcp_keepalive_intvl, \
                sock.tcp_keepalive_cnt = 1, *TCP_KEEPALIVE
        sock.ipv6 = wants_ipv6(str(endpoint), bind=server)  # tcp://[fd00::5]:5555
        if isinstance(self.keys, ServerKeys) and server:
            self.keys.serve(sock, role)
            if sock.socket_type == zmq.ROUTER:  # a PUB's one monitor is broker/revocation's
                self.watch_link(sock, str(endpoint), server=True, role=role, curve=True)
        elif isinstance(self.keys, ClientKeys) and not server:
            self.keys.connect_with(sock)
            self.curve_links.append((sock, str(endpoint)))
        elif self.insecure:
            if not self._warned_insecure:
                self._warned_insecure = True
                self.log.warning(
                    "%s: --insecure-bus: %s carries code and output in clear, open to anyone "
                    "who reaches it; and a message captured there can be sent again: this "
                    "node refuses a replay only while it remembers the signature (the last "
                    "%d it took, in memory: not once it has restarted)", self.name, endpoint,
                    DEFAULT_REPLAY_HISTORY)
        else:
            keys = "--curve-dir" if server else "--curve-key and --broker-key"
            given = f" ({option})" if option else ""
            raise ConfigError(f"{self.name}: {endpoint}{given} is a TCP endpoint, and the bus is "
                              f"encrypted there: give {keys} (bin/cellbus cert makes them), "
                              "or --insecure-bus on a network you trust")

    def watch_link(self, sock: BusSocket, endpoint: str, *, server: bool, curve: bool,
                   role: str = "", reconnect: Callable[[], None] | None = None) -> None:
        """Log what ``sock``'s connection does, and why a handshake fails (before it binds or
        connects: the monitor sees only what comes after). ``reconnect``: a client's second
        connection to an endpoint watched already, made anew so (LinkWatch.quiet)."""
        refusals = self.keys.roles.refusals if isinstance(self.keys, ServerKeys) else None
        link = LinkWatch(sock, endpoint, node=self.name, log=self.log, role=role or self.name,
                         server=server, curve=curve, refusals=refusals,
                         reconnect=reconnect or (None if server else lambda: self.reconnect(sock)),
                         wrong_key=None if server else lambda: next_broker_key(self),
                         together=self._together, rank=len(self.links),
                         quiet=reconnect is not None,
                         lost=None if server else lambda: self.link_lost(sock))
        self._sockets.append(link.events)
        if reconnect is None:  # (a quiet one is no link of its own to name)
            self.links.append(link)
        self.spawn(link.run(), f"link {endpoint}")

    def link_lost(self, sock: BusSocket) -> None:
        """``sock``'s link to the broker, up, was lost (ZeroMQ connects again by itself):
        a node that needs more done then says so here."""

    def link_up_for(self, endpoint: str) -> float | None:
        """Seconds since this node's link to the broker at ``endpoint`` last came up, while
        it is up; None while it is not, or if it is not watched."""
        ups = [link.up_at for link in self.links
               if link.endpoint == endpoint and not link.server and link.up]
        return time.monotonic() - max(ups) if ups else None

    def links_made(self, endpoint: str) -> int:
        """How many connections of this node's link to the broker at ``endpoint`` passed
        their handshake (0 if it is not watched)."""
        return sum(link.handshakes for link in self.links
                   if link.endpoint == endpoint and not link.server)

    def link_problem(self, endpoint: str, option: str, *, said: bool = False) -> str | None:
        """What is wrong with this node's link to the broker at ``endpoint`` (its bind
        ``option``), if anything: why its last handshake failed, or that it is not up.
        ``said``: the caller logs it, so the links do not say again that they are not up."""
        links = [link for link in self.links if link.endpoint == endpoint and not link.server]
        if failed := next((link.problem for link in links if link.problem), None):
            return failed
        if links and not any(link.up for link in links):
            for link in links if said else ():
                link.absence_said()
            return (f"no link to it at {endpoint}: is a broker running there, with this as "
                    f"its {option}, and is its port open to this host?")
        return None

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` in the background until it ends or the node stops; a crash is logged
        and stops the node, since a node with a dead loop must not pretend to be alive."""
        task = asyncio.create_task(coro, name=f"{self.name}.{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("%s: loop %s crashed; stopping (exit status 1)", self.name,
                           task.get_name(), exc_info=task.exception())
            self.crashed = True
            self.request_stop(said=True)

    async def recv(self, sock: BusSocket) -> tuple[list[bytes], Message] | None:
        """One checked message from ``sock``, or None if it was rejected (and logged)."""
        frames = await sock.recv_frames()
        try:
            got = self.session.deserialize(frames)
        except ProtocolError as e:
            self._rejected(e, frames)
            return None
        if got[1]["msg_type"] == mt.BUS_REVOKED and isinstance(self.keys, ClientKeys):
            self._revoked()
            return None
        return got

    def reconnect(self, sock: BusSocket) -> None:
        """Drop ``sock``'s connections and make them anew (the Paranoid Pirate worker's
        reconnect). What waits unsent in them is dropped: only for a link whose peer takes
        nothing from it anyway."""
        for connected, endpoint in self._connected:
            if connected is sock:
                try:
                    sock.disconnect(endpoint)
                except zmq.ZMQError:
                    pass  # not connected any more
                sock.connect(endpoint)

    def _revoked(self) -> None:
        """The broker revoked this node's key: disconnect every link now (no more output goes
        out, nothing comes in) and stop, with exit status 1."""
        if self.crashed:
            return
        self.log.error("%s: the broker revoked this node's CURVE key; disconnecting and "
                       "stopping (bin/cellbus cert makes a new one)", self.name)
        for sock, endpoint in self._connected:
            try:
                sock.disconnect(endpoint)
            except zmq.ZMQError:
                pass  # not connected any more
        self.crashed = True
        self.request_stop(said=True)

    def recv_waiting(self, sock: BusSocket,
                     limit: int) -> list[tuple[list[bytes], Message] | None]:
        """Up to ``limit`` messages already waiting on ``sock``, taken without waiting (None
        for each one rejected and logged): a batch for one pass of a loop."""
        got: list[tuple[list[bytes], Message] | None] = []
        while len(got) < limit and (frames := sock.recv_now()) is not None:
            try:
                got.append(self.session.deserialize(frames))
            except ProtocolError as e:
                self._rejected(e, frames)
                got.append(None)
        return got

    def _rejected(self, e: ProtocolError, frames: Sequence[bytes | zmq.Frame] = ()) -> None:
        """Count a dropped message and log it, at a bounded rate per peer and reason (a
        flood of bad messages is one line per 10 s, with its count)."""
        self.rejected[e.reason] += 1
        hint = ("; a node signing with another deployment key? every node needs the same "
                "--key-file") if e.detail == "signature does not match" else ""
        peer = routing_id(frames)
        self.reject_log.warning((peer, e.reason), "%s dropped a message: %s (%d %s so far)%s%s",
                                self.name, e, self.rejected[e.reason], e.reason, hint,
                                f"; from peer {peer}" if peer else "")

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._stop_requested = asyncio.Event()
        await self.setup()
        if self.metrics is not None and self.metrics_port:
            try:
                self.metrics.serve(self.metrics_port)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise address_in_use(self.name, f"metrics port {self.metrics_port}",
                                         "--metrics-port") from None
                raise ConfigError(f"{self.name}: cannot serve metrics on port "
                                  f"{self.metrics_port}: {e}") from None
            self.log.info("%s serves Prometheus metrics on http://127.0.0.1:%d/metrics",
                          self.name, self.metrics_port)
        self.log.info("%s started (cellbus %s)", self.name, VERSION)

    def request_stop(self, *, said: bool = False) -> None:
        """Stop serving; ``said``: the caller logged that the node stops, and why."""
        self._stop_said = self._stop_said or said
        if self._stop_requested is not None:
            self._stop_requested.set()

    @property
    def stop_said(self) -> bool:
        """Whether a stop was requested and said (a signal's, :func:`protocol.program`)."""
        return self._stop_said

    async def wait_stop_requested(self) -> None:
        assert self._stop_requested is not None, "start() first"
        await self._stop_requested.wait()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if not self._stop_said:
            self.log.info("%s stopping", self.name)
        try:
            await self.shutdown()
        finally:
            await self.cancel_loops()
            self._close_sockets()
            self.log.info("%s stopped", self.name)

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close(linger=0)
        if isinstance(self.keys, ServerKeys):
            self.keys.stop()
        self.ctx.term()

    async def cancel_loops(self) -> None:
        """Cancel every loop started with :meth:`spawn` and wait for them to end. A loop
        still running a second after is cancelled again: Python 3.11's ``asyncio.wait_for``
        swallows a cancellation that comes as its awaitable completes (CPython gh-86296),
        and a loop around it then goes on: a revoked gateway's link watch, whose socket's
        events came as it was cancelled, kept the gateway from stopping."""
        every = list(self._tasks)
        running = set(every)
        while running:
            for task in running:
                task.cancel()
            _, running = await asyncio.wait(running, timeout=CANCEL_AGAIN)
        await asyncio.gather(*every, return_exceptions=True)  # (their ends, retrieved)

    async def run(self) -> None:
        """Start, serve until asked to stop, then stop. A node that cannot start (a port in
        use, say) closes its sockets and raises: its one-line reason is the last word."""
        try:
            await self.start()
        except BaseException:
            await self.cancel_loops()
            self._close_sockets()
            raise
        try:
            await self.wait_stop_requested()
        finally:
            await self.stop()

"""The gateway node: a tornado server on the same event loop as its broker link."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import socket
import ssl

from tornado.netutil import bind_sockets

from protocol.errors import ConfigError, address_in_use
from protocol.node import Node
from protocol.sockets import BusSocket
from protocol.wire import Session

from . import heap
from .access import AccessPolicy
from .app import WS_PING, make_app, message_limit
from .health import GatewayMetrics
from .jupyter.channels import stop_sockets
from .bodylimit import HEADER_HARD_CAP, BodyLimit, hard_cap
from .bus import BrokerLink
from .connections import ConnectionLimits, GuardedServer, raise_fd_limit
from .outbox import CLIENT_BUFFER, CLIENT_STALL

#: Default largest input accepted, in bytes (answers 413 above it).
MAX_INPUT = 1024 * 1024
#: Bytes a connection reads at a time. tornado allocates (and zeroes) a buffer this big for
#: every read; its 64 KiB default cost ~3% of the gateway's instructions per execution.
READ_CHUNK = 16 * 1024


class Gateway(Node):
    name = "gateway"

    def __init__(self, session: Session, *, broker: str, subscribe: str, host: str = "127.0.0.1",
                 port: int = 8888, max_input: int = MAX_INPUT,
                 access: AccessPolicy | None = None, client_buffer: int = CLIENT_BUFFER,
                 client_stall: float = CLIENT_STALL, legacy_buffers: bool = False,
                 limits: ConnectionLimits | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        super().__init__(session)
        self.tls = tls  # HTTPS and WSS on its port (gateway/tls.py); None: HTTP
        self.limits = limits or ConnectionLimits()
        self.broker, self.subscribe = broker, subscribe
        self.host, self.port, self.max_input = host, port, max_input
        self.client_buffer, self.client_stall = client_buffer, client_stall
        self.legacy_buffers = legacy_buffers  # --legacy-buffers (gateway/jupyter/channels.py)
        self.access = access or AccessPolicy(host=host, port=port)
        self.bus_link: BrokerLink | None = None

    def link_lost(self, sock: BusSocket) -> None:
        """The answers a lost link was to carry never come (BrokerLink.lost)."""
        if self.bus_link is not None:
            self.bus_link.lost(sock)

    async def setup(self) -> None:
        heap.configure()
        soft, hard = raise_fd_limit()
        link = self.bus_link = BrokerLink(self, connect=self.broker, subscribe=self.subscribe)
        link.auth = self.access.auth
        self.metrics = GatewayMetrics(link, self.rejected)
        try:
            sockets = bind_sockets(self.port, self.host)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise address_in_use("gateway", f"port {self.port} on {self.host}",
                                     "--port") from None
            raise ConfigError(f"gateway cannot listen on {self.host}:{self.port}: {e}") from None
        if self.port == 0:  # a free port, the same on each address: said below, and used
            self.port = int(sockets[0].getsockname()[1])  # for the sign-in cookie's name
            self.access = dataclasses.replace(self.access, port=self.port)
        self.app = app = make_app(link, max_input=self.max_input, access=self.access,
                       client_buffer=self.client_buffer, client_stall=self.client_stall,
                       metrics=self.metrics, ws_ping=min(WS_PING, self.limits.idle_timeout),
                       legacy_buffers=self.legacy_buffers)
        limit = message_limit(self.max_input)
        self.server = GuardedServer(BodyLimit(app, limit), max_body_size=hard_cap(limit),
                                    max_header_size=HEADER_HARD_CAP, xheaders=False,
                                    chunk_size=READ_CHUNK, limits=self.limits,
                                    ssl_options=self.tls)
        self.server.add_sockets(sockets)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.link, self.heard_as = link, f"{socket.gethostname()}:{self.port}"
        self.spawn(link.heartbeats(self.heard_as), "heartbeats")
        self.log.info("gateway listening on %s://%s:%d/", "https" if self.tls else "http",
                      host, self.port)
        self.log.info("gateway access: %s", self.access.describe())
        self.log.info("gateway connections: headers within %g s, bodies within %g s, at most "
                      "%s per address; open-file limit %d (hard %d)", self.limits.idle_timeout,
                      self.limits.body_timeout, self.limits.per_address or "any", soft, hard)
        if self.access.auth == "none" and self.access.public:
            self.log.warning("gateway: --allow-anonymous: anyone who reaches %s://%s:%d/ can "
                             "run code here, with no token (rate limit: %s)",
                             "https" if self.tls else "http", host, self.port,
                             self.access.rate or "none; consider --rate")

    async def shutdown(self) -> None:
        self.link.stop(self.heard_as)  # first: what follows is time for it to go out
        self.server.stop()
        # Long-polls answer first (the document as it stands: their clients ask again);
        # closing their connections under them answered nothing.
        if not await self.app.settings["watch"].stop(5):
            self.log.warning("gateway: some long-polls were not answered in 5 s")
        try:
            await asyncio.wait_for(self.server.close_all_connections(), 5)
        except asyncio.TimeoutError:
            self.log.warning("gateway: some connections did not close in 5 s")
        await stop_sockets(self.app.settings["jupyter_sockets"], 5)

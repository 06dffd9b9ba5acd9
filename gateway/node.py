"""The gateway node: a tornado server on the same event loop as its broker link."""

from __future__ import annotations

import asyncio

from tornado.httpserver import HTTPServer

from protocol.node import Node
from protocol.wire import Session

from .app import make_app
from .bus import BrokerLink

#: Default largest input accepted, in bytes (answers 413 above it).
MAX_INPUT = 1024 * 1024


class Gateway(Node):
    name = "gateway"

    def __init__(self, session: Session, *, broker: str, subscribe: str, host: str = "127.0.0.1",
                 port: int = 8888, max_input: int = MAX_INPUT) -> None:
        super().__init__(session)
        self.broker, self.subscribe = broker, subscribe
        self.host, self.port, self.max_input = host, port, max_input

    async def setup(self) -> None:
        link = BrokerLink(self, connect=self.broker, subscribe=self.subscribe)
        app = make_app(link, max_input=self.max_input)
        self.server = HTTPServer(app, max_body_size=2 * self.max_input + 65536, xheaders=False)
        self.server.listen(self.port, self.host)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.log.info("gateway listening on http://%s:%d/", host, self.port)

    async def shutdown(self) -> None:
        self.server.stop()
        try:
            await asyncio.wait_for(self.server.close_all_connections(), 5)
        except asyncio.TimeoutError:
            self.log.warning("gateway: some connections did not close in 5 s")

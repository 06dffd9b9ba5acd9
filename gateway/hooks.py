"""The tornado hooks every gateway handler shares, HTTP routes and the WebSocket alike.

:class:`gateway.base.BaseHandler` and :class:`gateway.ws.SocketHandler` both derive from
:class:`Hooks` (the WebSocket handler puts it before tornado's ``WebSocketHandler``), so the
broker link, the JSON error body and the one-line access log of an exception are written
once.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from tornado.web import RequestHandler

from . import access, errors
from .bus import BrokerLink


class Hooks(RequestHandler):
    @property
    def link(self) -> BrokerLink:
        """The gateway's link to the broker (the application's ``link`` setting)."""
        return self.settings["link"]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        errors.write_error(self, status_code, **kwargs)

    def log_exception(self, typ: type[BaseException] | None, value: BaseException | None,
                      tb: TracebackType | None) -> None:
        access.log_exception(self, typ, value, tb)

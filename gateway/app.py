"""The gateway's tornado application: routes and settings."""

from __future__ import annotations

from typing import Any

import tornado.web

from . import (completions, health, layouts, notebook, pages, permalinks, sessionnotes,
               worksheets)
from .jupyter import ROUTES as JUPYTER_ROUTES
from .jupyter.model import Sockets
from .access import AccessPolicy, RefusalLog, tornado_settings
from .auth import TokenCheck
from .base import NotFoundHandler
from .bigreads import BigReads, PageTurn
from .bus import BrokerLink
from .health import GatewayMetrics
from .kernels import KernelsHandler
from .outbox import CLIENT_BUFFER, CLIENT_STALL
from .cells import CellWatch, EvaluateHandler, FileHandler, InterruptHandler, UpdateHandler
from .cells import InputHandler, InteractHandler, RestartHandler
from .ratelimit import RateLimiter
from .finished import FinishedAnswers
from .tokenwatch import Revocations
from .ws import SocketHandler

CELL = r"/home/([^/]+)/([^/]+)/([^/]+)"
#: Seconds between WebSocket pings (at most; a shorter --idle-timeout shortens it).
WS_PING = 20.0


def message_limit(max_input: int) -> int:
    """The largest request body and WebSocket message read (tornado closes a socket with 1009
    past it): an execute_request of ``max_input`` bytes of code (--max-input), JSON-escaped
    at two bytes a character (a newline, a quote, a backslash) or percent-encoded in a form,
    plus its envelope. So code at the limit is answered (run, or refused with 413), not cut
    off."""
    return 2 * max_input + 65536


def make_app(link: BrokerLink, *, max_input: int, access: AccessPolicy | None = None,
             client_buffer: int = CLIENT_BUFFER, client_stall: float = CLIENT_STALL,
             metrics: GatewayMetrics | None = None, ws_ping: float = WS_PING,
             **settings: Any) -> tornado.web.Application:
    """The application; ``ws_ping``: seconds between pings on a WebSocket, which is closed
    when one goes unanswered that long (tornado's default ping timeout: the interval)."""
    access = access or AccessPolicy()
    metrics = metrics or GatewayMetrics(link, {})
    watch = CellWatch()
    link.listeners.add(watch)
    finished = metrics.finished = FinishedAnswers()
    link.listeners.add(finished)
    link.asking.append(finished.asking)
    check = TokenCheck(link)
    limiter = RateLimiter(access.rate) if access.rate else None
    return tornado.web.Application(
        [
            (CELL + r"/evaluate", EvaluateHandler),
            (CELL + r"/update", UpdateHandler),
            (CELL + r"/interrupt", InterruptHandler),
            (CELL + r"/interact", InteractHandler),
            (CELL + r"/input", InputHandler),
            (CELL + r"/restart", RestartHandler),
            *completions.ROUTES,
            (CELL + r"/files/([0-9]{1,18})/([^/]+)", FileHandler),
            (r"/ws", SocketHandler),
            (r"/kernels", KernelsHandler),
            *health.ROUTES,
            *permalinks.ROUTES,
            *layouts.ROUTES,
            *sessionnotes.ROUTES,
            *notebook.ROUTES,
            *worksheets.ROUTES,
            *pages.ROUTES,
            *JUPYTER_ROUTES,
        ],
        default_handler_class=NotFoundHandler,
        link=link, watch=watch, finished=finished, max_input=max_input, client_buffer=client_buffer,
        client_stall=client_stall, metrics=metrics,
        token_check=check, revocations=Revocations(check), jupyter_sockets=Sockets(),
        saved_layouts=layouts.SavedLayouts(), big_reads=BigReads(), page_turn=PageTurn(limiter),
        limiter=limiter,
        request_limiter=RateLimiter(access.requests) if access.requests else None,
        refusal_log=RefusalLog(),
        **tornado_settings(access),
        websocket_max_message_size=message_limit(max_input),
        websocket_ping_interval=ws_ping,
        **pages.SETTINGS,
        **settings,
    )

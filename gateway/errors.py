"""JSON errors, for every gateway handler (HTTP and WebSocket handshakes alike).

Handlers raise ``tornado.web.HTTPError(status, log_message, reason=...)``, usually made by
:func:`fail`; :func:`write_error` turns it into ``{"error": reason}`` with that status, while
the log message stays in the log. An error made with ``retry_after`` also gets a
``Retry-After`` header, and a 401 says which scheme to use (``WWW-Authenticate: Bearer``).
"""

from __future__ import annotations

import json
from typing import Any

from tornado.web import HTTPError, RequestHandler


def fail(status: int, error: str, *, retry_after: int | None = None) -> HTTPError:
    """An HTTPError whose ``error`` text is shown to the client (with ``Retry-After``)."""
    e = HTTPError(status, error, reason=error)
    e.retry_after = retry_after  # type: ignore[attr-defined]
    return e


def allowed_methods(handler: RequestHandler) -> list[str]:
    """The methods ``handler``'s route answers (those its class defines; OPTIONS, a CORS
    preflight's, aside)."""
    return [m for m in handler.SUPPORTED_METHODS if m != "OPTIONS" and getattr(
        type(handler), m.lower(), None) is not getattr(RequestHandler, m.lower(), None)]


def write_error(handler: RequestHandler, status_code: int, **kwargs: Any) -> None:
    """``RequestHandler.write_error`` for JSON clients."""
    reason = handler._reason
    exc = kwargs.get("exc_info", (None, None))[1]
    if isinstance(exc, HTTPError) and exc.reason:
        reason = exc.reason
    elif status_code == 405 and (allowed := allowed_methods(handler)):
        # tornado's bare "Method Not Allowed" left a first `curl URL` of a POST route
        # guessing; the Allow header is HTTP's own way of saying it (RFC 9110, 15.5.6).
        handler.set_header("Allow", ", ".join(allowed))
        reason = (f"{handler.request.path} takes {' or '.join(allowed)}, "
                  f"not {handler.request.method}")
    elif status_code >= 500 and not isinstance(exc, HTTPError):
        reason = "internal error; the gateway log has the details"
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int) and retry_after >= 0:
        handler.set_header("Retry-After", str(retry_after))
    if status_code == 401:
        handler.set_header("WWW-Authenticate", 'Bearer realm="cellbus"')
    readable_by = getattr(exc, "readable_by", None)  # a refused origin (gateway/origins.py)
    if isinstance(readable_by, str):
        handler.set_header("Access-Control-Allow-Origin", readable_by)
        handler.add_header("Vary", "Origin")
    handler.set_header("Content-Type", "application/json; charset=UTF-8")
    keys = getattr(handler, "error_keys", ("error",))  # Jupyter's routes add "message"
    handler.finish(json.dumps(dict.fromkeys(keys, reason)))

"""What every gateway handler shares: JSON errors, the broker link, TCP_NODELAY.

Handlers raise ``tornado.web.HTTPError(status, log_message, reason=...)``; ``write_error``
turns it into ``{"error": reason}`` with that status, while the log message stays in the log.
An error made by :func:`fail` with ``retry_after`` also gets a ``Retry-After`` header.
"""

from __future__ import annotations

import json
from typing import Any

from tornado.web import HTTPError, RequestHandler

from protocol.wire import Message

from .bus import BrokerLink, BrokerUnavailable

#: Longest user, worksheet or cell id in a URL.
MAX_NAME = 200


#: Seconds a client is told to wait when the broker cannot be reached.
UNAVAILABLE_RETRY_AFTER = 5


def fail(status: int, error: str, *, retry_after: int | None = None) -> HTTPError:
    """An HTTPError whose ``error`` text is shown to the client (with ``Retry-After``)."""
    e = HTTPError(status, error, reason=error)
    e.retry_after = retry_after  # type: ignore[attr-defined]
    return e


class BaseHandler(RequestHandler):
    @property
    def link(self) -> BrokerLink:
        return self.settings["link"]

    def prepare(self) -> None:
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.set_nodelay(True)  # small JSON answers must not wait for delayed ACKs

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, HTTPError) and exc.reason:
            reason = exc.reason
        elif status_code >= 500 and not isinstance(exc, HTTPError):
            reason = "internal error; the gateway log has the details"
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int) and retry_after >= 0:
            self.set_header("Retry-After", str(retry_after))
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"error": reason}))

    def write_json(self, status: int, doc: dict[str, Any]) -> None:
        self.set_status(status)
        self.finish(json.dumps(doc))

    async def ask(self, msg_type: str, content: dict[str, Any], address: tuple[str, str, str],
                  **kwargs: Any) -> Message:
        """Ask the broker; its refusals and its absence become HTTP errors."""
        try:
            reply = await self.link.request(msg_type, content, address, **kwargs)
        except BrokerUnavailable as e:
            n = UNAVAILABLE_RETRY_AFTER
            raise fail(503, f"{e}; retry in {n} s", retry_after=n) from None
        content = reply["content"]
        if not content.get("ok"):
            status = content.get("http_status")
            retry_after = content.get("retry_after")
            raise fail(status if isinstance(status, int) and 400 <= status < 600 else 502,
                       str(content.get("error") or "refused by the broker"),
                       retry_after=retry_after if isinstance(retry_after, int) else None)
        return reply


def check_address(user: str, worksheet: str, cell_id: str) -> tuple[str, str, str]:
    for part in (user, worksheet, cell_id):
        if not part or len(part) > MAX_NAME:
            raise fail(404, "no such cell")
    return user, worksheet, cell_id


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        raise fail(404, f"no route {self.request.path}")

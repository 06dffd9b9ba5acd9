"""What every gateway handler shares: access checks, JSON errors, the broker link, TCP_NODELAY.

Handlers raise ``tornado.web.HTTPError(status, log_message, reason=...)``; ``write_error``
turns it into ``{"error": reason}`` with that status, while the log message stays in the log.
An error made by :func:`fail` with ``retry_after`` also gets a ``Retry-After`` header
(:mod:`gateway.errors`). Before any handler runs, :meth:`BaseHandler.prepare` passes the
request through :mod:`gateway.guard` (host, origin, token, owner, rate); a browser
following a sign-in link is answered by :mod:`gateway.signin`.
"""

from __future__ import annotations

import json
from typing import Any

from protocol.address import MAX_NAME
from protocol.errors import ProtocolError
from protocol.wire import Message

from . import access, guard, signin
from .bus import BrokerUnavailable
from .errors import fail
from .hooks import Hooks
from .jsonbody import load_json

#: Seconds a client is told to wait when the broker cannot be reached.
UNAVAILABLE_RETRY_AFTER = 5


class BaseHandler(Hooks):
    #: Anyone may load it (it asks the broker for nothing); the API needs a token (--auth).
    public = False
    #: It makes a session run code: counted by --rate.
    costly = False
    #: A GET with ``?token=`` is a browser's sign-in (:mod:`gateway.signin`); False for APIs
    #: whose clients send ``?token=`` with every request (Jupyter's).
    signs_in = True
    #: Who the request is from, once :meth:`prepare` has admitted it.
    visitor: guard.Visitor

    async def prepare(self) -> None:
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.set_nodelay(True)  # small JSON answers must not wait for delayed ACKs
        visitor = await guard.admit(self, public=self.public)
        if visitor is None:
            return  # answered already: a CORS preflight
        self.visitor = visitor
        await guard.within_requests(self, visitor)
        if self.signs_in and signin.is_link(self, visitor):
            await signin.by_link(self, visitor)  # the cookie and a redirect, or a question
            return
        if self.request.path.startswith("/home/") and len(self.path_args) >= 3:
            guard.check_cell_request(self, visitor, costly=self.costly)

    def options(self, *args: str) -> None:
        """CORS preflight: answered in :meth:`prepare`."""

    def check_trusted_origin(self, origin: str) -> bool:
        """tornado's cross-origin protection: pages of ``--allow-origin`` origins may post."""
        return guard.policy_of(self).origin_allowed(origin)

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        # No page of another origin may frame an answer (clickjacking: the worksheet runs
        # code in one click, and a page of another port is the same site, so the sign-in
        # cookie goes along). Output frames are srcdoc, never a gateway URL.
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Content-Security-Policy", "frame-ancestors 'none'")
        access.cors_headers(self)

    def write_json(self, status: int, doc: dict[str, Any]) -> None:
        self.set_status(status)
        self.finish(json.dumps(doc))

    def json_object(self, example: str = "") -> dict[str, Any]:
        """The request's body as a JSON object; else a 400 (that shows ``example``)."""
        hint = f" like {example}" if example else ""
        try:
            body = load_json(self.request.body)
        except ValueError as e:
            raise fail(400, f"the body cannot be used: {e}; send a JSON object{hint}") \
                from None
        if not isinstance(body, dict):
            raise fail(400, f"the body must be a JSON object{hint}")
        return body

    async def ask(self, msg_type: str, content: dict[str, Any], address: tuple[str, str, str],
                  **kwargs: Any) -> Message:
        """Ask the broker; its refusals and its absence become HTTP errors."""
        kwargs.setdefault("client", guard.quota_client(self, self.visitor))
        try:
            reply = await self.link.request(msg_type, content, address, **kwargs)
        except BrokerUnavailable as e:
            n = UNAVAILABLE_RETRY_AFTER
            raise fail(503, f"{e}; retry in {n} s", retry_after=n) from None
        except ProtocolError as e:  # a value the bus cannot carry (serialize refused it)
            raise fail(400, f"the request holds a value that cannot be sent: {e.detail}") \
                from None
        content = reply["content"]
        if not content.get("ok"):
            status = content.get("http_status")
            retry_after = content.get("retry_after")
            raise fail(status if isinstance(status, int) and 400 <= status < 600 else 502,
                       str(content.get("error") or "refused by the broker"),
                       retry_after=retry_after if isinstance(retry_after, int) else None)
        return reply


def check_address(user: str, worksheet: str, cell_id: str) -> tuple[str, str, str]:
    """The cell's address, or a 400 that names the part over :data:`MAX_NAME` (such a cell
    cannot exist, but "no such cell" would send the client looking for a typo)."""
    for what, part in (("user name", user), ("worksheet", worksheet), ("cell id", cell_id)):
        if len(part) > MAX_NAME:
            raise fail(400, f"the {what} is {len(part)} characters long; the limit is "
                            f"{MAX_NAME}")
    return user, worksheet, cell_id


class NotFoundHandler(BaseHandler):
    async def prepare(self) -> None:
        raise fail(404, f"no route {self.request.path}")

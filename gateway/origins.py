"""A page of another site whose origin the gateway does not allow, told so in words it can
read.

A browser hides a cross-origin answer from the page unless it carries
``Access-Control-Allow-Origin``, so a refused page saw only "could not reach the server"
(a failed ``fetch()``) and its author had nothing to go on. The refusal is therefore a 403
that the refused origin may read: its body names the origin and the option an operator sets
(``--allow-origin``). Reading an error grants nothing: no cookie goes with it (no
``Allow-Credentials``), and the request itself is refused. An opaque origin (``null``: a
sandboxed frame, our own output frames among them) is refused without that header.
"""

from __future__ import annotations

from tornado.web import HTTPError, RequestHandler

from .access import AccessPolicy, normal_origin
from .errors import fail


def refusal(handler: RequestHandler, policy: AccessPolicy, same_origin: bool) -> HTTPError | None:
    """The 403 for a request sent by a page of another site that ``policy`` does not allow,
    or None. ``same_origin``: the request comes from the gateway's own pages."""
    origin = handler.request.headers.get("Origin")
    if not origin or same_origin or policy.origin_allowed(origin):
        return None
    error = fail(403, message(origin))
    if normal_origin(origin):  # errors.write_error lets it read the answer
        error.readable_by = origin  # type: ignore[attr-defined]
    return error


def message(origin: str) -> str:
    """Why a page of ``origin`` is refused, and what an operator does about it."""
    return (f"pages of {origin} may not use this gateway: its operator allows them with "
            f"--allow-origin {origin} (or CELLBUS_GATEWAY_ALLOW_ORIGIN)")


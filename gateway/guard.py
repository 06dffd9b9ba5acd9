"""What every gateway request passes before its handler runs, in this order:

1. **Host** (DNS rebinding): a loopback gateway answers only to names it serves (403).
2. **Preflight**: ``OPTIONS`` from an ``--allow-origin`` page gets its CORS answer (204), any
   other 403. Cross-origin ``POST`` was already refused by tornado's
   ``cross_origin_protection`` unless its origin is allowed.
3. **Token** (``--auth token``): header, ``?token=`` or cookie, checked with the broker; none
   or a bad one is 401 (pages anyone may load stay open). A ``GET`` with ``?token=`` is a
   browser's sign-in: :mod:`gateway.signin` decides whether it sets the cookie or asks.
4. **Cookie rules**: the cookie speaks only for the gateway's own pages: a cross-origin
   request carrying it is 403 (WebSockets: ``check_origin``), and a form posted with it must
   carry tornado's ``_xsrf`` field.
5. For cell URLs: **owner** (another user's cell is 404, the answer of a cell that does not
   exist), **body type** (JSON or a form; 415) and **rate** (429 with ``Retry-After``).

The cookie is ``HttpOnly`` and ``SameSite=Strict``: Strict, because the only requests that
need it come from the gateway's own pages, and a navigation from another site (which Strict
leaves without it) lands on a page that asks for nothing, or on the sign-in question of
:mod:`gateway.signin`. Its value is the token itself, so removing the user revokes it like any
other use of the token.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from dataclasses import dataclass
from typing import Final

from tornado.web import HTTPError, RequestHandler

from . import origins
from .access import FLOOD_HOLD, AccessPolicy, client_address, preflight
from .auth import COOKIE, BadCredential, TokenCheck, credential
from .clientaddr import client_key
from .errors import fail
from .bus import BrokerUnavailable
from .ratelimit import RateLimiter

FORM_TYPES: Final = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
BODY_TYPES: Final = FORM_TYPES | {"application/json"}
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
#: Seconds a client is told to wait when the broker cannot check a token.
AUTH_RETRY_AFTER: Final = 5
NEED_TOKEN: Final = ("this gateway needs a token: send the header Authorization: Bearer TOKEN, "
                     "or open a page once with ?token=TOKEN (`bin/cellbus user add NAME` makes "
                     "one)")


@dataclass(frozen=True)
class Visitor:
    """Who a request is from: ``user`` (None: anonymous), how it proved it (``via``: header,
    query, cookie or None) and the key its rate is counted under."""

    user: str | None
    via: str | None
    key: str


def policy_of(handler: RequestHandler) -> AccessPolicy:
    policy: AccessPolicy = handler.settings["access"]
    return policy


async def admit(handler: RequestHandler, *, public: bool = False) -> Visitor | None:
    """Steps 1-4 for ``handler``'s request: the visitor, or None when the request has been
    answered already (a preflight). Raises HTTPError. A visitor ``via`` ``query`` on a
    ``GET`` that is no WebSocket is signing in (:func:`gateway.signin.by_link`)."""
    policy = policy_of(handler)
    host = handler.request.headers.get("Host", "")
    if not policy.serves_host(host):
        raise fail(403, f"this gateway does not serve the host {host!r}; open it as "
                        f"http://127.0.0.1:{policy.port}/ (or start it with --allow-host NAME "
                        "if a proxy serves it under that name)")
    if handler.request.method == "OPTIONS":
        if preflight(handler):
            return None
        raise fail(403, "pages of this origin may not use this gateway (see --allow-origin)")
    if (refused := origins.refusal(handler, policy, same_origin(handler))) is not None:
        raise refused
    anonymous = Visitor(None, None, f"ip:{client_key(client_address(handler))}")
    if policy.auth == "none":
        return anonymous
    try:
        cred = credential(handler, policy.cookie_name)
    except BadCredential as e:
        raise fail(401, f"{e}; {NEED_TOKEN}") from None
    if cred is None:
        if public:
            return anonymous
        raise fail(401, NEED_TOKEN)
    user = await token_user(handler, cred.token)
    if user is None:
        if cred.via != COOKIE:
            raise fail(401, "the token is not valid (mistyped, replaced or removed)")
        handler.clear_cookie(policy.cookie_name)
        if public:
            return anonymous
        raise fail(401, "this browser's token is no longer valid; open the page once with "
                        "?token=TOKEN")
    if cred.via == COOKIE and handler.request.method not in SAFE_METHODS:
        if not same_origin(handler):
            raise fail(403, "the sign-in cookie is for this gateway's own pages; other pages "
                            "send Authorization: Bearer TOKEN")
        if body_type(handler) in FORM_TYPES:
            try:
                handler.check_xsrf_cookie()
            except HTTPError:
                raise fail(403, "a form posted with the sign-in cookie needs the _xsrf field "
                                "of this gateway's pages; send JSON instead") from None
    return Visitor(user, cred.via, f"user:{user}")


async def token_user(handler: RequestHandler, token: str) -> str | None:
    """Whose ``token`` this is (None: nobody's); 503 when the broker cannot say."""
    check: TokenCheck = handler.settings["token_check"]
    try:
        return await check.user(token)
    except BrokerUnavailable as e:
        raise fail(503, f"cannot check the token now ({e}); retry in {AUTH_RETRY_AFTER} s",
                   retry_after=AUTH_RETRY_AFTER) from None


async def still_admitted(handler: RequestHandler, visitor: Visitor) -> None:
    """A 401 if the token that admitted ``handler``'s request no longer names its user. A
    long poll is admitted once and answers up to a minute later: checked only then, it
    carried output printed after its token was removed (README: a removed token stops
    working within a second). While the broker cannot say, the answer goes, as an open
    WebSocket stays (gateway/tokenwatch.py)."""
    policy = policy_of(handler)
    if policy.auth != "token" or visitor.user is None:
        return
    cred = credential(handler, policy.cookie_name)  # admitted with it: well-formed
    check: TokenCheck = handler.settings["token_check"]
    try:
        user = await check.user(cred.token) if cred is not None else None
    except BrokerUnavailable:
        return
    if user != visitor.user:
        raise fail(401, "the token is no longer valid (replaced or removed)")


def same_origin(handler: RequestHandler) -> bool:
    """Whether the request comes from this gateway's own pages (or from no page at all)."""
    site = handler.request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = handler.request.headers.get("Origin")
    host = handler.request.headers.get("Host", "").lower()
    return origin is None or urllib.parse.urlsplit(origin).netloc.lower() == host


def body_type(handler: RequestHandler) -> str:
    return handler.request.headers.get("Content-Type", "").split(";")[0].strip().lower()


def check_cell_request(handler: RequestHandler, visitor: Visitor, *, costly: bool) -> None:
    """Step 5 for a request about the cell in ``handler.path_args`` (user, worksheet, cell)."""
    user, worksheet, cell_id = handler.path_args[:3]
    if not may_use(policy_of(handler), visitor, user):
        raise no_such_cell(worksheet, cell_id)
    if handler.request.method not in SAFE_METHODS and handler.request.body \
            and body_type(handler) not in BODY_TYPES:
        raise fail(415, "send JSON (Content-Type: application/json) or a form")
    if costly:
        charge(handler, visitor)


def charge(handler: RequestHandler, visitor: Visitor) -> None:
    """Count a request that runs code or adds to the store against ``--rate``: a 429 with
    Retry-After past it."""
    wait = rate_wait(handler, visitor)
    if wait is not None:
        raise fail(429, too_many(handler, wait), retry_after=wait)


async def within_requests(handler: RequestHandler, visitor: Visitor) -> None:
    """Count any request of ``visitor`` against ``--client-requests``: past it, a 429 with
    Retry-After, written only after :data:`~gateway.access.FLOOD_HOLD` seconds. A client
    that ignores Retry-After and asks again at once, on as many connections as its address
    may hold, then makes at most that many requests a second (holding one costs nothing),
    rather than taking the gateway's loop from everyone else's."""
    wait = requests_wait(handler, visitor)
    if wait is None:
        return
    await asyncio.sleep(FLOOD_HOLD)
    raise fail(429, too_many_requests(handler, wait), retry_after=wait)


def requests_wait(handler: RequestHandler, visitor: Visitor) -> int | None:
    """Take one of ``visitor``'s ``--client-requests``: None if it had one, else seconds
    until it has (the refusal counted in the metrics)."""
    limiter: RateLimiter | None = handler.settings.get("request_limiter")
    wait = limiter.take(visitor.key) if limiter is not None else None
    if wait is not None and (metrics := handler.settings.get("metrics")) is not None:
        metrics.refusals.labels("requests").inc()
    return wait


async def held_back(handler: RequestHandler, visitor: Visitor) -> int | None:
    """A WebSocket message past ``--client-requests``: the seconds to wait, once the message
    was held :data:`~gateway.access.FLOOD_HOLD` (tornado reads no more of its socket
    meanwhile); None if it may go on."""
    wait = requests_wait(handler, visitor)
    if wait is not None:
        await asyncio.sleep(FLOOD_HOLD)
    return wait


def too_many_requests(handler: RequestHandler, wait: int) -> str:
    """The words of a ``--client-requests`` refusal, over HTTP and the WebSocket alike."""
    return (f"too many requests from this client (limit {policy_of(handler).requests}, "
            f"--client-requests); retry in {wait} s")


def over_rate(handler: RequestHandler, wait: int) -> HTTPError:
    """The 429 (counted in the metrics) of a read whose client's bucket is empty, ``wait``
    seconds from its next token."""
    if (metrics := handler.settings.get("metrics")) is not None:
        metrics.refusals.labels("rate").inc()
    return fail(429, too_many(handler, wait), retry_after=wait)


def too_many(handler: RequestHandler, wait: int) -> str:
    """The words of a ``--rate`` refusal, the same over HTTP, the WebSocket and Jupyter's
    API."""
    return f"too many requests (limit {policy_of(handler).rate}); retry in {wait} s"


def quota_client(handler: RequestHandler, visitor: Visitor) -> str | None:
    """Whom the broker counts a request's sessions against when no token names a user: on a
    public gateway (``--allow-anonymous``), the visitor's address (its rate key), since a
    user there is a name in a URL that anyone changes at will, and one client took every
    place of every device under as many names. None elsewhere (a token's user counts; a
    loopback gateway is one person's)."""
    policy = policy_of(handler)
    if visitor.user is None and policy.auth == "none" and policy.public:
        return visitor.key
    return None


def may_use(policy: AccessPolicy, visitor: Visitor, user: str) -> bool:
    """Whether ``visitor`` may read or drive cells of ``user``."""
    return policy.auth == "none" or visitor.user == user


def no_such_cell(worksheet: str, cell_id: str) -> HTTPError:
    """The 404 of a cell that does not exist (the broker's words), for other users' cells."""
    return fail(404, f"no cell {cell_id} in worksheet {worksheet}")


def rate_wait(handler: RequestHandler, visitor: Visitor) -> int | None:
    """None if ``visitor`` may make one more request that runs code, else seconds to wait."""
    limiter: RateLimiter | None = handler.settings.get("limiter")
    wait = limiter.take(visitor.key) if limiter is not None else None
    if wait is not None and (metrics := handler.settings.get("metrics")) is not None:
        metrics.refusals.labels("rate").inc()
    return wait

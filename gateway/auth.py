"""``--auth token``: which user a request's token belongs to.

A token comes in an ``Authorization: Bearer TOKEN`` header, a ``?token=`` query argument
(browsers: once, exchanged for a cookie; WebSockets from other sites: every time) or the
cookie. The gateway has no store: it asks the broker with the token's SHA-256
(``auth_request``) and keeps the answer for :data:`CACHE_SECONDS`, so a token removed with
``bin/cellbus user remove`` stops working within that time, without a restart. Concurrent
asks for one token share one round trip.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Final

from tornado.web import RequestHandler

from protocol import msgtypes as mt
from protocol.tokens import MAX_TOKEN_LENGTH, token_hash

from .bus import BrokerLink, BrokerUnavailable

#: Seconds an answer about a token is kept; a revoked token works at most this much longer.
CACHE_SECONDS: Final = 1.0
#: Tokens remembered at most (answers are small; this bounds a flood of made-up tokens).
MAX_CACHED: Final = 10_000

HEADER, QUERY, COOKIE = "header", "query", "cookie"


class BadCredential(Exception):
    """A credential that is malformed before any lookup (wrong scheme, empty, too long)."""


@dataclass(frozen=True)
class Credential:
    """A token and where it came from (:data:`HEADER`, :data:`QUERY` or :data:`COOKIE`)."""

    token: str
    via: str


def credential(handler: RequestHandler, cookie_name: str) -> Credential | None:
    """The request's token, header first, then ``?token=``, then the cookie: a request that
    names a token explicitly is judged by that token alone, never rescued by a cookie."""
    header = handler.request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() not in ("bearer", "token"):  # "token TOKEN": Jupyter's scheme
            raise BadCredential("use the header Authorization: Bearer TOKEN")
        return _checked(token.strip(), HEADER)
    query = handler.get_query_argument("token", None)
    if query is not None:
        return _checked(query.strip(), QUERY)
    cookie = handler.get_cookie(cookie_name)
    return _checked(cookie, COOKIE) if cookie else None


def _checked(token: str, via: str) -> Credential:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise BadCredential("the token is empty or too long")
    return Credential(token, via)


class TokenCheck:
    """Token -> user name (None: no such token), asked of the broker, cached briefly."""

    def __init__(self, link: BrokerLink, *, ttl: float = CACHE_SECONDS) -> None:
        self.link = link
        self.ttl = ttl
        self.cache: dict[str, tuple[str | None, float]] = {}  # hash -> (user, expires)
        self.asking: dict[str, asyncio.Future[str | None]] = {}

    async def user(self, token: str) -> str | None:
        """Whose token this is; raises ``BrokerUnavailable`` when the broker cannot say."""
        digest = token_hash(token)
        now = time.monotonic()
        hit = self.cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        pending = self.asking.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.asking[digest] = future
        try:
            user = await self._ask(digest)
            future.set_result(user)
        except Exception as e:
            future.set_exception(e)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        except BaseException:  # cancelled: those waiting on this ask are too
            future.cancel()
            raise
        finally:
            del self.asking[digest]
        self._remember(digest, user, time.monotonic() + self.ttl)
        return user

    async def _ask(self, digest: str) -> str | None:
        reply = await self.link.request(mt.AUTH_REQUEST, {"token_hash": digest}, ("", "", ""))
        content = reply["content"]
        if not content.get("ok"):
            raise BrokerUnavailable(f"the broker could not check the token: "
                                    f"{content.get('error')}")
        user = content.get("user")
        return user if isinstance(user, str) and user else None

    def _remember(self, digest: str, user: str | None, expires: float) -> None:
        if len(self.cache) >= MAX_CACHED:
            now = time.monotonic()
            self.cache = {k: v for k, v in self.cache.items() if v[1] > now}
            if len(self.cache) >= MAX_CACHED:
                self.cache.clear()
        self.cache[digest] = (user, expires)

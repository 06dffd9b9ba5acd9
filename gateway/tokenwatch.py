"""An open WebSocket keeps to the token rule: a token removed or replaced stops working on
the sockets it opened within the same bound as on new requests.

A socket is admitted once, at its handshake (:mod:`gateway.guard`), and may stay open for
days; checked only then, a removed user's socket went on running code and carrying output.
So its token is checked again before each message its client sends and every
:data:`CHECK_INTERVAL` seconds: by one timer of the gateway's for all its sockets
(:class:`Revocations`), which asks once per distinct token and tick, however many sockets
share it; :class:`gateway.auth.TokenCheck` answers from its cache of one second, so this
costs at most one broker round trip per token and second. Once the broker says the token is
no one's (or another user's), the socket is closed with 1008 (policy violation) and the
message in hand is not acted on. While the broker cannot be asked, the socket stays: nothing
it sends gets anywhere without the broker either.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from tornado.ioloop import PeriodicCallback
from tornado.websocket import WebSocketHandler

from .auth import BadCredential, TokenCheck, credential
from .bus import BrokerUnavailable
from .guard import Visitor, policy_of

log = logging.getLogger("cellbus.gateway")
#: Seconds between checks of an open socket's token.
CHECK_INTERVAL: Final = 0.5
#: RFC 6455's close code for "the policy that let you in no longer does".
POLICY_VIOLATION: Final = 1008
REVOKED: Final = "the token is no longer valid (replaced or removed); sign in again"


class Revocations:
    """The gateway's token-auth WebSockets, by token, and the one timer that checks them."""

    def __init__(self, check: TokenCheck) -> None:
        self.check = check
        self.open: dict[str, set[TokenWatch]] = {}
        self.timer: PeriodicCallback | None = None
        self.checking: asyncio.Future[None] | None = None

    def add(self, watch: TokenWatch, token: str) -> None:
        self.open.setdefault(token, set()).add(watch)
        if self.timer is None:
            self.timer = PeriodicCallback(self._tick, CHECK_INTERVAL * 1000)
            self.timer.start()

    def discard(self, watch: TokenWatch, token: str) -> None:
        watches = self.open.get(token)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                del self.open[token]
        if not self.open and self.timer is not None:
            self.timer.stop()
            self.timer = None

    def _tick(self) -> None:
        if self.checking is None or self.checking.done():  # a slow broker: no pile-up
            self.checking = asyncio.ensure_future(self._check_all())
            self.checking.add_done_callback(_logged)

    async def _check_all(self) -> None:
        for token, watches in list(self.open.items()):
            try:
                user = await self.check.user(token)
            except BrokerUnavailable:
                return
            for watch in list(watches):
                if watch.user != user:
                    watch.revoked()


class TokenWatch:
    """Closes ``socket`` once the token it was opened with is no longer its user's."""

    def __init__(self, socket: WebSocketHandler, visitor: Visitor) -> None:
        self.socket, self.user = socket, visitor.user
        self.token: str | None = None
        policy = policy_of(socket)
        if policy.auth == "token" and visitor.user is not None:
            try:
                found = credential(socket, policy.cookie_name)
            except BadCredential:  # admitted with it, so it cannot be malformed now
                found = None
            self.token = found.token if found is not None else None
        self.revocations: Revocations = socket.settings["revocations"]
        self.watched = self.closing = False

    def start(self) -> None:
        if self.token is not None:
            self.revocations.add(self, self.token)
            self.watched = True

    def stop(self) -> None:
        if self.watched and self.token is not None:
            self.revocations.discard(self, self.token)
            self.watched = False

    async def valid(self) -> bool:
        """Whether the socket may still act for its user; if not, it is being closed."""
        if self.token is None:
            return True
        try:
            user = await self.revocations.check.user(self.token)
        except BrokerUnavailable:
            return True
        if user == self.user:
            return True
        self.revoked()
        return False

    def revoked(self) -> None:
        """Close the socket (once): its token is no longer its user's."""
        if self.closing:
            return
        self.closing = True
        self.stop()
        log.info("gateway: closing a WebSocket of %s: its token was removed or replaced",
                 self.user)
        self.socket.close(POLICY_VIOLATION, REVOKED)


def _logged(check: asyncio.Future[None]) -> None:
    if not check.cancelled() and (e := check.exception()) is not None:
        log.warning("gateway: could not check an open WebSocket's token: %s", e)

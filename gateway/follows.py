"""How many worksheets one visitor may follow at once over ``/ws``.

A ``subscribe_request`` costs the gateway a subscription (and its listener) for as long as
the socket is open, and the broker a replay; there is no unsubscribe but closing the socket.
Nothing bounded them: one socket subscribing to made-up worksheet names grew the gateway by
38 MB per 20,000 in 10 s, without end. So one user a token names follows at most
:data:`MAX_FOLLOWED` worksheets over all their sockets of this gateway together, and an
anonymous socket that many on its own (anonymous visitors behind a proxy share an address,
and ``--max-per-address`` already bounds the sockets of one). A page follows one per
worksheet (one per cell of an embedding page), far below it. Past it a subscription is
refused with 429, and closing a socket frees what it followed.
"""

from __future__ import annotations

import collections
from typing import Any, Final

#: Worksheets one visitor may follow at once on one gateway.
MAX_FOLLOWED: Final = 2000
#: The application setting that holds the counts (made on first use).
SETTING: Final = "followed"


def key(socket: Any) -> str:
    """Whose count a socket's subscriptions go to: its user's, or its own if anonymous."""
    visitor = socket.visitor
    return visitor.key if visitor.user is not None else f"socket:{id(socket)}"


def refusal() -> str:
    return (f"too many subscriptions: {MAX_FOLLOWED} worksheets are followed already (over "
            "this user's open sockets, or this anonymous socket), the most at once; close a "
            "socket (or a page) that follows worksheets you no longer need")


class Follows:
    """Worksheets followed, by visitor key, over every socket of one application."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    @classmethod
    def of(cls, settings: dict[str, Any]) -> Follows:
        found: Follows = settings.setdefault(SETTING, cls())
        return found

    def take(self, key: str) -> bool:
        """One more for ``key``, if it has room."""
        if self.counts[key] >= MAX_FOLLOWED:
            return False
        self.counts[key] += 1
        return True

    def give_back(self, key: str, n: int) -> None:
        left = self.counts[key] - n
        if left > 0:
            self.counts[key] = left
        else:
            del self.counts[key]

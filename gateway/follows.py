"""How many worksheets one visitor may follow at once over ``/ws``.

A ``subscribe_request`` costs the gateway a subscription (and its listener) for as long as
the socket is open, and the broker a replay; there is no unsubscribe but closing the socket.
Nothing bounded them: one socket subscribing to made-up worksheet names grew the gateway by
38 MB per 20,000 in 10 s, without end. So one user a token names follows at most
:data:`MAX_FOLLOWED` worksheets over all their sockets of this gateway together, and an
anonymous socket that many on its own (anonymous visitors behind a proxy share an address,
and ``--max-per-address`` already bounds the sockets of one). A page follows one per
worksheet (one per cell of an embedding page), far below it. Past it a subscription is
refused with 429 (:data:`REFUSED`), and closing a socket frees what it followed.
"""

from __future__ import annotations

import collections
from typing import Any, Final

#: Worksheets one visitor may follow at once on one gateway.
MAX_FOLLOWED: Final = 2000
#: The application setting that holds the counts by visitor (made on first use).
SETTING: Final = "followed"
#: The answer to a subscription past the bound.
REFUSED: Final = {
    "ok": False, "http_status": 429,
    "error": f"too many subscriptions: {MAX_FOLLOWED} worksheets are followed already (over "
             "this user's open sockets, or this anonymous socket), the most at once; close a "
             "socket (or a page) that follows worksheets you no longer need"}


def take(socket: Any) -> bool:
    """Count one more worksheet followed by ``socket`` (a :class:`gateway.ws.SocketHandler`)
    against its visitor, if there is room."""
    counts = _counts(socket)
    who = _key(socket)
    if counts[who] >= MAX_FOLLOWED:
        return False
    counts[who] += 1
    socket.followed = getattr(socket, "followed", 0) + 1
    return True


def give_back(socket: Any) -> None:
    """``socket`` is closed: what it followed no longer counts."""
    counts, who = _counts(socket), _key(socket)
    counts[who] -= getattr(socket, "followed", 0)
    socket.followed = 0
    if counts[who] <= 0:
        del counts[who]


def _counts(socket: Any) -> collections.Counter[str]:
    counts: collections.Counter[str] = socket.settings.setdefault(SETTING, collections.Counter())
    return counts


def _key(socket: Any) -> str:
    """Whose count a socket's subscriptions go to: its user's, or its own if anonymous."""
    visitor = socket.visitor
    return visitor.key if visitor.user is not None else f"socket:{id(socket)}"

"""Big answers taken from the broker one at a time (``/update`` of a big document, see
broker/updates.py; a file over 256 KiB).

Every reply of the broker reaches this gateway on one connection, in order: a small answer
that another user waits for queues behind every big one sent before it. With the broker's
encoded documents kept (a finished cell re-read costs it no encoding), ten clients
re-reading a 7 MB cell had ten such documents on the way at once, and another user's poll
waited 0.8 s for its answer behind them (bench/read_hammer.py). So a big answer is asked for
only while no other is on its way, with at most :data:`WAITING` more waiting; past that the
read is refused with 503 and Retry-After, before it is counted against ``--rate``. And it
comes on a connection of its own (gateway/bus.py ``bulk``), so small answers pass it by. A
finished cell's big document, whose JSON the broker keeps, is kept here too under the
SHA-256 the broker names for it, and sent again without asking for it.

Pages of a worksheet's feed (``session_replay_request``: the replay of a WebSocket
subscription or of a Jupyter client's channels from an old position, and ``GET
/home/U/W/session``) are taken from the broker and encoded one page at a time as well, under
``settings["page_turn"]`` (a lock, first come first served), and sent, paced by their
client, outside it. Each page is about 1 MiB, decoded on the gateway's loop and encoded as
JSON there: ten clients replaying a worksheet of 7 MB from seq 0 over and over had ten such
pages ready at once, each ahead of another user's poll, whose median took 0.26 s
(bench/read_hammer.py --mode ws). Taken in turn, at most one such page is ahead of it. A
replay waits for its turn instead of being refused: its client has nothing to retry.

Each page is paid for by its reader, against ``--rate``: a token per :data:`PAGE_COST`
bytes it carried (what the broker says it read), taken once it came (:class:`PageTurn`).
Before, replays were free: a client that subscribed from seq 0 over and over, opened many
sockets each replaying a big history, or long-polled ``/session`` from 0, read as much as
it liked. A page is asked for only once its reader's bucket holds a token: a replay whose
reader has spent it waits (outside the turn) until the bucket has one again, as the rate
refills it; it is paced, not refused, for the same reason as above (``/session``, an HTTP
read, is refused instead, with 429 and Retry-After). A page may leave the
bucket below zero (by less than what a page carries), which the reader's next request
waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any, Final

from protocol import msgtypes as mt
from protocol.turns import Turn
from protocol.wire import Message

from .base import BaseHandler
from .errors import fail
from .guard import charge
from .ratelimit import RateLimiter

#: Big reads that wait while another is on its way; more are refused (503).
WAITING: Final = 4
#: Seconds a refused read is told to wait.
RETRY_AFTER: Final = 2
#: Bytes of finished cells' big documents kept.
KEPT_BYTES: Final = 64 * 2**20
#: Bytes of an answer read whole past which it costs a token of ``--rate`` (as the broker's
#: big ``/update`` documents: broker/updates.py BIG).
BIG_ANSWER: Final = 256 * 1024
#: Bytes of a replay's pages that cost their reader one token of ``--rate`` (a page of the
#: broker's is about this much: broker/intake.py REPLAY_PAGE_BYTES).
PAGE_COST: Final = 2**20


class PageTurn:
    """The gateway's one turn for pages of worksheets' feeds (``settings["page_turn"]``),
    first come first served, each page paid for by its reader (see the module docstring)."""

    def __init__(self, limiter: RateLimiter | None) -> None:
        self.limiter = limiter
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def take(self, key: str) -> AsyncIterator[None]:
        """Hold the turn for one page of reader ``key`` (its ``--rate`` key), once its
        bucket holds a token: until then it waits without the turn."""
        while True:
            await self._lock.acquire()
            wait = self.limiter.wait(key) if self.limiter is not None else None
            if wait is None:
                break
            self._lock.release()
            await asyncio.sleep(wait)
        try:
            yield
        finally:
            self._lock.release()

    def due(self, key: str) -> int | None:
        """None if reader ``key``'s bucket holds a token, else the seconds until it does:
        an HTTP read (``/session``) is refused then, as a big ``/update`` is, rather than
        held open while the rate refills."""
        return self.limiter.wait(key) if self.limiter is not None else None

    def paid(self, key: str, content: dict[str, Any]) -> None:
        """Reader ``key`` took the page of a ``session_replay_reply``: it costs what the
        broker read for it."""
        carried = content.get("bytes")
        if self.limiter is not None and isinstance(carried, int) and carried > 0:
            self.limiter.spend(key, carried / PAGE_COST)


class BigReads:
    """The gateway's one turn for big answers (``settings["big_reads"]``), and the finished
    cells' documents it keeps, by their SHA-256."""

    def __init__(self, waiting: int = WAITING, kept_bytes: int = KEPT_BYTES) -> None:
        self.kept_bytes = kept_bytes
        self._turn = Turn(waiting)
        #: SHA-256 (hex) -> the JSON of a finished cell's big document, least recently
        #: used first.
        self.kept: OrderedDict[str, bytes] = OrderedDict()
        self._kept_size = 0

    def kept_body(self, digest: object) -> bytes | None:
        """The kept document of SHA-256 ``digest``, if this gateway has it."""
        body = self.kept.get(digest) if isinstance(digest, str) else None
        if body is not None:
            self.kept.move_to_end(digest)  # type: ignore[arg-type]
        return body

    def keep(self, digest: str, body: bytes) -> None:
        if len(body) > self.kept_bytes or digest in self.kept:
            return
        self.kept[digest] = body
        self._kept_size += len(body)
        while self._kept_size > self.kept_bytes:
            self._kept_size -= len(self.kept.popitem(last=False)[1])

    @property
    def waiting(self) -> int:
        """Big reads fetching or waiting to."""
        return self._turn.waiting

    def check(self) -> None:
        """503 with Retry-After if :data:`WAITING` big reads wait already."""
        if self._turn.full:
            raise fail(503, f"this gateway has {self._turn.waiting} big answers to fetch "
                            f"already; retry in {RETRY_AFTER} s", retry_after=RETRY_AFTER)

    def turn(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the turn while the big answer comes from the broker."""
        return self._turn.take()


def answer_read(handler: BaseHandler, doc: dict[str, Any]) -> None:
    """Answer ``doc`` (200) to a read a client may repeat at will (a worksheet's layout, a
    permalink: up to 1 MiB each): over :data:`BIG_ANSWER` bytes it counts against
    ``--rate`` as a big ``/update`` answer does (429 past it, the answer not sent)."""
    body = json.dumps(doc)
    if len(body) > BIG_ANSWER:
        charge(handler, handler.visitor)
    handler.set_status(200)
    handler.finish(body)


async def fetch(handler: BaseHandler, msg_type: str, content: dict[str, Any],
                address: tuple[str, str, str]) -> Message:
    """Ask the broker again, with ``big``, for an answer it withheld as big (an ``/update``
    document, broker/updates.py; a file, broker/intake.py): 503 past the queue, then 429
    past the client's ``--rate`` (a big read costs as a run does), then in turn, on the
    link's connection for big answers (gateway/bus.py)."""
    big: BigReads = handler.settings["big_reads"]
    big.check()
    charge(handler, handler.visitor)
    async with big.turn():
        return await handler.ask(msg_type, {**content, "big": True}, address, bulk=True)


async def document(handler: BaseHandler, query: dict[str, Any], address: tuple[str, str, str],
                   withheld: dict[str, Any]) -> bytes:
    """The JSON of the big ``/update`` document the broker ``withheld``: the one this gateway
    keeps under the SHA-256 the broker named, if it has it (counted against ``--rate`` all
    the same), else :func:`fetch`, checked, and kept if the broker keeps it too."""
    if (body := handler.settings["big_reads"].kept_body(withheld.get("sha256"))) is not None:
        charge(handler, handler.visitor)
        return body
    reply = await fetch(handler, mt.CELL_UPDATE_REQUEST, query, address)
    body = await body_of(reply)
    if reply["content"].get("kept"):
        handler.settings["big_reads"].keep(reply["content"]["sha256"], body)
    return body


async def body_of(reply: Message) -> bytes:
    """The JSON a ``cell_update_reply`` answers the client with: a small document encoded
    here, a big one as the broker encoded it (checked on a thread, as a notebook is)."""
    content = reply["content"]
    if "document" in content:
        return json.dumps(content["document"]).encode()
    buffers = reply.get("buffers") or []
    body: bytes = buffers[0] if len(buffers) == 1 else b""
    digest = await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
    if content.get("bytes") != len(body) or content.get("sha256") != digest:
        raise fail(502, "the broker's answer arrived damaged; ask again")
    return body

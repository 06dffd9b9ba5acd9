"""Big answers taken from the broker one at a time (``/update`` of a big document, see
broker/updates.py; a file over 256 KiB).

Every reply of the broker reaches this gateway on one connection, in order: a small answer
that another user waits for queues behind every big one sent before it. With the broker's
encoded documents kept (a finished cell re-read costs it no encoding), ten clients
re-reading a 7 MB cell had ten such documents on the way at once, and another user's poll
waited 0.8 s for its answer behind them (bench/read_hammer.py). So a big answer is asked for
only while no other is on its way, with at most :data:`WAITING` more waiting; past that the
read is refused with 503 and Retry-After, before it is counted against ``--rate``. And it
comes on a connection of its own (gateway/bus.py ``bulk``), so small answers pass it by.

Pages of a worksheet's feed (``session_replay_request``: the replay of a WebSocket
subscription or of a Jupyter client's channels from an old position, and ``GET
/home/U/W/session``) are taken from the broker and encoded one page at a time as well, under
``settings["page_turn"]`` (a lock, first come first served), and sent, paced by their
client, outside it. Each page is about 1 MiB, decoded on the gateway's loop and encoded as
JSON there: ten clients replaying a worksheet of 7 MB from seq 0 over and over had ten such
pages ready at once, each ahead of another user's poll, whose median took 0.26 s
(bench/read_hammer.py --mode ws). Taken in turn, at most one such page is ahead of it. A
replay waits for its turn instead of being refused: its client has nothing to retry.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final

from protocol.wire import Message

from .base import BaseHandler
from .errors import fail
from .guard import charge

#: Big reads that wait while another is on its way; more are refused (503).
WAITING: Final = 4
#: Seconds a refused read is told to wait.
RETRY_AFTER: Final = 2


class BigReads:
    """The gateway's one turn for big answers (``settings["big_reads"]``)."""

    def __init__(self, waiting: int = WAITING) -> None:
        self.waiting_limit = waiting
        self._turn = asyncio.Lock()
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Big reads fetching or waiting to."""
        return self._waiting

    def check(self) -> None:
        """503 with Retry-After if :data:`WAITING` big reads wait already."""
        if self._waiting > self.waiting_limit:
            raise fail(503, f"this gateway has {self._waiting} big answers to fetch already; "
                            f"retry in {RETRY_AFTER} s", retry_after=RETRY_AFTER)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the turn while the big answer comes from the broker."""
        self._waiting += 1
        try:
            async with self._turn:
                yield
        finally:
            self._waiting -= 1


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

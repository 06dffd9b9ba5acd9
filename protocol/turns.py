"""Work that takes its turn: one at a time, with a bounded line.

An expensive read (a notebook built, a big cell document encoded, a big answer fetched from
the broker) runs one at a time, so that one client repeating it cannot take a node's loop or
its link from everyone else; and no more than a few wait for their turn, so that a crowd of
them is told to come back (503 with Retry-After, by the caller) rather than queued without end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Turn:
    """One at a time, and at most ``waiting`` more in line (the caller refuses one more when
    :attr:`full`, before it takes its place)."""

    def __init__(self, waiting: int) -> None:
        self.limit = waiting
        #: Those holding the turn or waiting for it.
        self.waiting = 0
        self._lock = asyncio.Lock()

    @property
    def full(self) -> bool:
        """Whether the line is full: one more is to be refused."""
        return self.waiting > self.limit

    @contextlib.asynccontextmanager
    async def take(self) -> AsyncIterator[None]:
        """Wait in line, then hold the turn for the ``async with`` block."""
        self.waiting += 1
        try:
            async with self._lock:
                yield
        finally:
            self.waiting -= 1

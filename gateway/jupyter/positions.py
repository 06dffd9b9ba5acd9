"""Which of a channels client's messages have surely left the gateway: its delivery position.

A message is queued in the socket's :class:`~gateway.outbox.Outbox` before it is handed to
tornado's stream; a client that drops while messages wait there never gets them. So the
position kept in the store is the last message *handed over*: each message sent is marked
with the outbox's byte count after it (``carried``), and the outbox has handed over
``carried - queued`` bytes; the position is the last mark at or below that. It may lag
(the store then replays a few messages again: at least once), never run ahead.
"""

from __future__ import annotations

from collections import deque

from ..outbox import Outbox

Position = tuple[str, int]  # (cellbus session, seq)


class HandingOutbox(Outbox):
    """An outbox that remembers how many bytes it had handed to tornado when it ended (it
    drops its queue then)."""

    handed_at_end: int | None = None

    def handed(self) -> int:
        if self.handed_at_end is not None:
            return self.handed_at_end
        return self.carried - self.queued

    def end(self) -> None:
        if not self.closed:
            self.handed_at_end = self.carried - self.queued
        super().end()


class Positions:
    """Marks of the messages sent, and the last one handed over."""

    def __init__(self) -> None:
        self.marks: deque[tuple[int, Position]] = deque()
        self.confirmed: Position | None = None

    def sent(self, carried: int, position: Position) -> None:
        """A message was given to the outbox; ``carried`` is its byte count after it."""
        self.marks.append((carried, position))

    def handed(self, handed: int) -> Position | None:
        """The last position whose message is within the first ``handed`` bytes."""
        while self.marks and self.marks[0][0] <= handed:
            self.confirmed = self.marks.popleft()[1]
        return self.confirmed

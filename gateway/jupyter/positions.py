"""Which of a channels client's messages have surely left the gateway: its delivery position.

A message is queued in the socket's :class:`~gateway.outbox.Outbox` before it is handed to
tornado's stream, which passes it to the kernel's send queue, from which TCP delivers it; a
client whose connection breaks (a reset, a crash, a gateway killed) never gets what was still
in any of these. So the position kept in the store is the last message the client's side
has acknowledged: each message sent is marked with the outbox's byte count after it
(``carried``); the bytes taken are ``carried`` less what is queued, what tornado's stream
has not written and what the kernel holds unacknowledged (``SIOCOUTQ``), measured while the
connection is open; the position is the last mark at or below that. Only a connection that
ends cleanly (no error: a close handshake, either side's) counts everything handed to
tornado as taken, since the client reads up to the close. The position may lag (the store
then replays a few messages again: at least once), never run ahead.
"""

from __future__ import annotations

import fcntl
import struct
import termios
from collections import deque
from typing import Any

from tornado.websocket import WebSocketHandler

from ..outbox import Outbox

Position = tuple[str, int]  # (cellbus session, seq)


def unacknowledged(stream: Any) -> int:
    """Bytes in the kernel's send queue of ``stream``'s socket, sent or not, that the peer
    has not acknowledged (``SIOCOUTQ``, which is ``TIOCOUTQ`` on Linux); 0 if unknown."""
    sock = getattr(stream, "socket", None)
    try:
        out = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError):
        return 0
    return int(struct.unpack("i", out)[0])


class HandingOutbox(Outbox):
    """An outbox that knows how many of its bytes the client's side has taken (see above)."""

    handed_at_end: int | None = None
    #: Bytes the client's side had taken when last measured, the connection open.
    taken = 0

    def __init__(self, handler: WebSocketHandler, *args: Any, **kwargs: Any) -> None:
        super().__init__(handler, *args, **kwargs)
        connection = handler.ws_connection
        self.stream = getattr(connection, "stream", None)

    def handed(self) -> int:
        if self.handed_at_end is not None:
            return self.handed_at_end
        if self.stream is not None and not self.stream.closed():
            self.taken = max(self.taken, self.carried - self.queued - self.unsent()
                             - unacknowledged(self.stream))
        return self.taken

    def unsent(self) -> int:
        """:meth:`Outbox.unsent`, from the stream itself once the handler let go of it."""
        stream = self.stream
        if stream is None:
            return super().unsent()
        return int(stream._total_write_index - stream._total_write_done_index)

    def end(self) -> None:
        if not self.closed:  # what tornado had not written is gone with the stream
            broken = self.stream is not None and self.stream.error is not None
            self.handed_at_end = self.taken if broken else max(
                self.taken, self.carried - self.queued - self.unsent())
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

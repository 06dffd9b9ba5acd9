"""A WebSocket's outbound messages, bounded in bytes.

tornado's ``write_message`` puts every message in the connection's write buffer at once,
however little of it the client takes: a client that does not read made the gateway hold
all the output of its worksheets, for as long as it stayed connected (issue 18). Here a
message goes to tornado's stream only while the stream holds less than :data:`WINDOW` bytes
the kernel has not taken; the rest waits in a queue of at most ``limit`` bytes. A client
that leaves more than that unread is closed with :data:`TOO_SLOW`, right behind what is
already in the stream, so it sees the code when it reads again; nothing is lost, since the
store has every message and the client resumes from the last seq it got (cellbus.js does,
with backoff).

A write that fails because the client went away is seen here and ends the outbox; no write
is left as a task whose exception nobody retrieves.

A long-poll's answer (:func:`write_paced`) is one document that the client asks for again if
it does not get it (``/update`` is safe to retry): it goes out a :data:`WINDOW` at a time,
and a client that takes none of it for ``--client-stall`` seconds has its connection closed,
so a client that does not read holds one answer for that long at most.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from tornado.web import RequestHandler
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from . import heap

log = logging.getLogger("cellbus.gateway")

#: Close code for a client that left more than its bound unread (4000-4999 are for
#: applications, RFC 6455 7.4.2; 1008, "policy violation", plus 4000). The client should
#: connect again after a pause and resume each worksheet from the last seq it has.
TOO_SLOW = 4008
#: Default bound (``--client-buffer``): bytes of messages a client may leave unread.
CLIENT_BUFFER = 4 * 1024 * 1024
#: Default seconds (``--client-stall``) a long-poll's client may take none of its answer.
CLIENT_STALL = 20.0
#: Bytes in tornado's stream that the kernel has not taken, above which messages wait in the
#: queue: enough to keep a reading client's connection busy, and what the close frame waits
#: behind.
WINDOW = 64 * 1024


class Outbox:
    """What one socket still has to send, in order; every message of the socket goes
    through :meth:`send`. ``on_close`` runs once, when the outbox ends for any reason."""

    def __init__(self, handler: WebSocketHandler, limit: int,
                 on_close: Callable[[], None]) -> None:
        self.handler, self.limit, self.on_close = handler, limit, on_close
        self.queue: deque[str | bytes] = deque()
        self.queued = 0  # bytes in queue
        self.carried = 0  # bytes sent over the socket's life
        self.closed = False
        self._room = asyncio.Event()
        self._room.set()

    def send(self, text: str | bytes) -> None:
        """Queue one message (JSON text, whose length is its size: json.dumps writes
        ASCII; or bytes, a binary frame); past the bound, close the socket with
        :data:`TOO_SLOW` instead."""
        if self.closed:
            return
        if self.queued and self.queued + len(text) > self.limit:
            return self._overflow()
        self.queue.append(text)
        self.queued += len(text)
        self.carried += len(text)
        self._pump()

    async def room(self) -> bool:
        """Wait until at most half the bound is queued; False if the outbox ended. A sender
        that can wait (a replay from the store) waits here and never overflows."""
        await self._room.wait()
        return not self.closed

    def end(self) -> None:
        """The socket is closed: drop what waits, and let every waiter go."""
        if not self.closed:
            self.closed = True
            self.queue.clear()
            self.queued = 0
            self._room.set()
            self.on_close()
            heap.trim_soon(self.carried)

    def unsent(self) -> int:
        """Bytes in tornado's stream the kernel has not taken yet (the stream's own count:
        tornado has no public accessor for it)."""
        stream = getattr(self.handler.ws_connection, "stream", None)
        if stream is None:
            return 0
        return stream._total_write_index - stream._total_write_done_index

    def _pump(self) -> None:
        while self.queue and self.unsent() < WINDOW:
            text = self.queue[0]
            try:
                future = self.handler.write_message(text, binary=isinstance(text, bytes))
            except WebSocketClosedError:  # closing: it was not handed over (positions.py)
                return self.end()
            self.queue.popleft()
            self.queued -= len(text)
            # Run when the stream has passed this message to the kernel: the next ones may go.
            future.add_done_callback(self._written)
        if self.queued * 2 <= self.limit:
            self._room.set()
        else:
            self._room.clear()

    def _written(self, future: asyncio.Future[None]) -> None:
        if future.cancelled() or future.exception() is not None:  # the client went away
            return self.end()
        self._pump()

    def _overflow(self) -> None:
        unread = self.queued + self.unsent()
        log.info("gateway: closing a WebSocket that left %d bytes unread (bound %d): code %d, "
                 "it resumes from the store", unread, self.limit, TOO_SLOW)
        self.end()
        self.handler.close(TOO_SLOW, f"too slow: over {self.limit} bytes unread; "
                                     "reconnect and resume from your last seq")


async def write_paced(handler: RequestHandler, body: bytes, stall: float) -> bool:
    """Send ``body`` as the whole answer, a :data:`WINDOW` at a time, each once the kernel
    took the one before; close the connection instead if the client takes nothing for
    ``stall`` seconds. True if it was all sent. An answer of one window goes as tornado
    sends any (the common case: its ETag and all)."""
    if len(body) <= WINDOW:
        handler.finish(body)
        return True
    handler.set_header("Content-Length", str(len(body)))
    view = memoryview(body)
    for start in range(0, len(body), WINDOW):
        handler.write(bytes(view[start:start + WINDOW]))
        if not await _taken(handler.flush(), stall):
            log.info("gateway: dropping a long-poll whose client took none of its answer "
                     "for %.0f s (%d of %d bytes sent)", stall, start, len(body))
            handler.request.connection.close()  # type: ignore[union-attr]
            return False
    handler.finish()
    return True


async def _taken(future: asyncio.Future[None], stall: float) -> bool:
    """Whether the write ``future`` stands for completes within ``stall`` seconds."""
    done, _ = await asyncio.wait({future}, timeout=stall)
    if not done:  # its exception, when the connection is closed, is retrieved: no log line
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        return False
    return not future.cancelled() and future.exception() is None

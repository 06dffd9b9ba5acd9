"""The private channel between an overseer and the one worker process it serves.

A worker never holds the bus key and never touches ZeroMQ (DESIGN.md, "Trust boundaries").
It is given one end of a ``socketpair`` before any user code runs, and the overseer holds the
other end. Over it travel length-prefixed msgpack records, each a dict::

    overseer -> worker   {"msg_type": "execute_request", "msg_id": str, "content": {...}}
    worker -> overseer   {"msg_type": "stream", "content": {...}, "metadata": {...},
                          "buffers": [bytes, ...]}

Records are unsigned: the channel is private, and the overseer stamps every record with the
session, parent and routing facts it knows itself, so a worker can only ever speak for its own
session about the request it was given. Anything malformed raises ``ProtocolError``; a
stream that ends inside a record raises its subclass :class:`LinkCut` (what a process that
died while writing leaves, not a record it forged).

Frame: 4-byte big-endian length, then that many bytes of msgpack.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from typing import Any

import msgpack

from . import bounded
from .errors import ProtocolError
from .shape import MAX_NESTING, too_deep

Record = dict[str, Any]
_LEN = struct.Struct("!I")
#: Largest record accepted on a worker link, in bytes.
DEFAULT_MAX_RECORD = 64 * 1024 * 1024
#: Records larger than this are decoded in a thread, so the overseer's loop keeps serving
#: other sessions meanwhile (bounded.unpack's hooks let the loop's thread in).
DECODE_OFF_LOOP = 1 << 20


class LinkCut(ProtocolError):
    """The link's stream ended inside a record: the peer died (or closed its end) while it
    wrote one. What came whole before was read; the half record is no record."""

    def __init__(self) -> None:
        super().__init__("frames", "worker link closed inside a record")


class LinkStalled(ConnectionError):
    """The worker left unread a record it was given before: its code took over the link."""


def encode(record: Record) -> bytes:
    body = msgpack.packb(record, use_bin_type=True)
    return _LEN.pack(len(body)) + body


def decode(body: bytes) -> Record:
    try:
        record = bounded.unpack(body)
    except ProtocolError as e:
        raise ProtocolError(e.reason, f"worker record: {e.detail}") from None
    if not isinstance(record, dict) or not isinstance(record.get("msg_type"), str):
        raise ProtocolError("decode", "worker record is not a dict with a msg_type")
    if too_deep(record, MAX_NESTING + 1):  # the record's own dict is one level
        raise ProtocolError("decode", f"worker record nested deeper than {MAX_NESTING} levels")
    return record


def _check_length(n: int, limit: int) -> None:
    if n > limit:
        raise ProtocolError("oversize", f"worker record of {n} bytes, limit {limit}")


class WorkerLink:
    """The worker's end: blocking, and safe to send from several threads."""

    def __init__(self, sock: socket.socket, max_record: int = DEFAULT_MAX_RECORD) -> None:
        self.sock = sock
        self.max_record = max_record
        self._send_lock = threading.Lock()
        self._held: list[bytes] | None = None

    def send(self, record: Record) -> None:
        self.send_encoded(encode(record))

    def send_encoded(self, data: bytes) -> None:
        """Send a record :func:`encode` made (kept back while the link is held)."""
        with self._send_lock:
            if self._held is not None:
                self._held.append(data)
            else:
                self.sock.sendall(data)

    def hold(self) -> bool:
        """Keep records back until :meth:`release`, which sends them in one write, in the
        order they were sent, from whatever thread: one wake-up of the overseer instead of
        one per record. Hold only around code that does not wait. False if already held
        (then the outer holder releases)."""
        with self._send_lock:
            if self._held is not None:
                return False
            self._held = []
            return True

    def release(self) -> None:
        """Send what was held, and stop holding."""
        with self._send_lock:
            held, self._held = self._held, None
            if held:
                self.sock.sendall(b"".join(held))

    def recv(self) -> Record | None:
        """The next record, or None when the overseer closed the channel."""
        head = self._read_exactly(_LEN.size, eof_ok=True)
        if head is None:
            return None
        (n,) = _LEN.unpack(head)
        _check_length(n, self.max_record)
        return decode(self._read_exactly(n, eof_ok=False) or b"")

    def _read_exactly(self, n: int, *, eof_ok: bool) -> bytes | None:
        """``n`` bytes; None at a clean end of stream if ``eof_ok``; a stream that ends
        anywhere else raises :class:`LinkCut`."""
        chunks, have = [], 0
        while have < n:
            chunk = self.sock.recv(min(n - have, 1 << 20))
            if not chunk:
                if have == 0 and eof_ok:
                    return None
                raise LinkCut()
            chunks.append(chunk)
            have += len(chunk)
        return b"".join(chunks)


class OverseerLink:
    """The overseer's end, on the asyncio loop."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 max_record: int = DEFAULT_MAX_RECORD) -> None:
        self.reader, self.writer, self.max_record = reader, writer, max_record
        #: Size in bytes of the last record read (also when it did not decode), for pacing.
        self.last_size = 0

    @classmethod
    async def open(cls, sock: socket.socket,
                   max_record: int = DEFAULT_MAX_RECORD) -> OverseerLink:
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=1 << 20)
        return cls(reader, writer, max_record)

    async def send(self, record: Record) -> None:
        """Write ``record``, never waiting for the worker to read it: the device's one loop
        that takes every session's requests sends them, and waiting there (``drain``) for a
        worker whose code stopped reading its link stalled every other session of the device.
        Nothing piles up: the overseer writes a record only once the worker has answered the
        one before (a request once the last has ended, the answer to a prompt), which a
        worker reads whole first; so a record still unwritten by then was left unread, and
        :class:`LinkStalled` is raised instead. Raises ``ConnectionResetError`` once the link
        is closed (the worker is ending): a closed transport raises ``RuntimeError`` under
        uvloop, which ended the device's loop when a request came for a worker between its
        link's end and its exit."""
        if self.writer.is_closing():
            raise ConnectionResetError("the worker's link is closed")
        unread = self.writer.transport.get_write_buffer_size()
        if unread:
            raise LinkStalled(f"the worker left {unread} bytes of what it was sent unread")
        self.writer.write(encode(record))

    async def recv(self) -> Record | None:
        """The next record, or None at end of stream (the worker exited or closed it)."""
        try:
            head = await self.reader.readexactly(_LEN.size)
        except asyncio.IncompleteReadError as e:
            if e.partial:
                raise LinkCut() from None
            return None
        except ConnectionResetError:  # it died with what the overseer sent it unread
            return None
        (n,) = _LEN.unpack(head)
        self.last_size = n
        _check_length(n, self.max_record)
        try:
            body = await self.reader.readexactly(n)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            raise LinkCut() from None
        if n > DECODE_OFF_LOOP:
            return await asyncio.to_thread(decode, body)
        return decode(body)

    def close(self) -> None:
        self.writer.close()

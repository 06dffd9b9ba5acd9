"""A WebSocket message over the largest one read is refused with a close the client sees.

tornado closes a socket whose next message is longer than ``websocket_max_message_size``
with code 1009 (message too big) as soon as it reads the frame's length, and drops the
connection at once, with the rest of the message unread. Closing a TCP connection with data
unread resets it, so a browser still sending a message of a few MiB saw no close frame: a
dropped connection (1006), which it cannot tell from a network fault. The page then sent the
same message again on its next socket, for ever.

:class:`ReadsOversized` reads such a message to its end and throws it away (a chunk at a
time, never held) before it closes with 1009, as :mod:`gateway.bodylimit` does for an HTTP
body over the limit, up to the same hard cap (:func:`gateway.bodylimit.hard_cap`); past that
tornado's own close stands.
"""

from __future__ import annotations

import logging

from tornado.iostream import StreamClosedError

from .bodylimit import hard_cap
from .masking import MaskedOnly

log = logging.getLogger("cellbus.gateway")

#: RFC 6455 7.4.1: a message too big to process.
MESSAGE_TOO_BIG = 1009
#: Bytes read at a time from a message being thrown away.
DRAIN_CHUNK = 64 * 1024
#: The sizes of a frame's extended payload length, by the 7-bit length that announces it.
EXTENDED = {126: 2, 127: 8}
MASK_KEY = 4
#: Bits of a frame's first byte (FIN: the message's last frame; an opcode with CONTROL: a
#: control frame, such as a ping) and of its second (MASKED).
FIN, CONTROL, MASKED = 0x80, 0x08, 0x80


class ReadsOversized(MaskedOnly):
    """tornado's protocol (client frames masked), but a message past the largest is read
    and thrown away before the socket is closed with 1009. Frame lengths are seen where
    tornado reads them, through ``_read_bytes`` (tornado has no hook there)."""

    _extended = 0  # bytes of extended length the frame being read has next (0: none)
    _final = True  # the frame being read ends its message

    async def _read_bytes(self, n: int) -> bytes:
        header = self._at_frame_start
        data = await super()._read_bytes(n)
        if header:
            self._final = bool(data[0] & FIN)
            length = data[1] & 0x7F
            self._extended = EXTENDED.get(length, 0)
            if not self._extended:
                await self._check(length)
        elif self._extended and n == self._extended:
            self._extended = 0
            await self._check(int.from_bytes(data, "big"))
        return data

    async def _check(self, length: int) -> None:
        """Refuse a frame of ``length`` bytes that makes its message too big (and not too
        big to read: past the hard cap tornado closes as it always did)."""
        largest = self.params.max_message_size
        held = self._fragmented_message_buffer
        size = length + (len(held) if held is not None else 0)
        if size <= largest or size > hard_cap(largest):
            return
        log.info("gateway: a WebSocket message of %d bytes or more, over the largest (%d); "
                 "closing the socket (code %d) once it is read", size, largest,
                 MESSAGE_TOO_BIG)
        await self._discard(MASK_KEY + length)
        final, budget = self._final, hard_cap(largest) - size
        while not final and budget > 0:  # its next frames (a browser sends a long one in parts)
            head = await self.stream.read_bytes(2)
            length = head[1] & 0x7F
            if length in EXTENDED:
                length = int.from_bytes(await self.stream.read_bytes(EXTENDED[length]), "big")
            final = bool(head[0] & FIN) and not head[0] & CONTROL  # a ping may come between
            budget -= length
            await self._discard((MASK_KEY if head[1] & MASKED else 0) + length)
        if final:
            self.close(MESSAGE_TOO_BIG, "message too big")
        raise StreamClosedError()  # ends tornado's frame loop, as a closed stream does

    async def _discard(self, n: int) -> None:
        """Read ``n`` bytes of the connection and throw them away."""
        self._wire_bytes_in += n
        while n > 0:
            n -= len(await self.stream.read_bytes(min(n, DRAIN_CHUNK), partial=True))

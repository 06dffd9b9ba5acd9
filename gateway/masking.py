"""RFC 6455 5.1: "a server MUST close the connection upon receiving a frame that is not
masked", a check tornado 6.6 does not make (it unmasks a frame only if it is masked); and
RFC 6455 8.1: a text message that is not UTF-8 fails the connection with code 1007, where
tornado drops the TCP connection with no close frame at all.

Masking keeps a hostile page's bytes from reaching a proxy between browser and gateway as
they were written, which could make the proxy take them for HTTP (cache poisoning); every
browser masks, so only a client that breaks the protocol sends an unmasked frame.
:class:`MaskedOnly` fails such a connection with close code 1002 (protocol error) before
acting on the frame, and one with a text message that is not UTF-8 with 1007 (invalid
data): both are the close with a code the README promises for a broken frame.
"""

from __future__ import annotations

import logging

from asyncio import Future

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketProtocol13

log = logging.getLogger("cellbus.gateway")

#: RFC 6455 7.4.1: the endpoint is terminating the connection due to a protocol error.
PROTOCOL_ERROR = 1002
#: RFC 6455 7.4.1: a message's data is not consistent with its type (text that is not UTF-8).
INVALID_DATA = 1007
MASK_BIT = 0x80
TEXT_OPCODE = 0x1


class MaskedOnly(WebSocketProtocol13):
    """tornado's protocol, but every client frame must be masked. It reads each frame's
    first two bytes through ``_read_bytes`` (the frame's header); the check sits there, as
    tornado has no hook for it. Text messages must be UTF-8 (:meth:`_handle_message`)."""

    def _handle_message(self, opcode: int, data: bytes) -> Future[None] | None:
        """tornado's, but text that is not UTF-8 closes with 1007 instead of a bare drop
        (the check decodes once more; tornado decodes again to hand the text over)."""
        if opcode == TEXT_OPCODE and not self._frame_compressed and not self.client_terminated:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                log.info("gateway: a WebSocket client sent text that is not UTF-8; closing "
                         "it (code %d, RFC 6455 8.1)", INVALID_DATA)
                self.close(INVALID_DATA, "text messages must be UTF-8 (RFC 6455 8.1)")
                self._abort()
                return None
        return super()._handle_message(opcode, data)

    _at_frame_start = False

    async def _receive_frame(self) -> None:
        self._at_frame_start = True
        await super()._receive_frame()

    async def _read_bytes(self, n: int) -> bytes:
        data = await super()._read_bytes(n)
        if self._at_frame_start:
            self._at_frame_start = False
            if len(data) >= 2 and not data[1] & MASK_BIT:
                log.info("gateway: a WebSocket client sent an unmasked frame; closing it "
                         "(code %d, RFC 6455 5.1)", PROTOCOL_ERROR)
                self.close(PROTOCOL_ERROR, "client frames must be masked (RFC 6455 5.1)")
                self._abort()
                raise StreamClosedError()  # ends tornado's frame loop, as a closed stream
        return data

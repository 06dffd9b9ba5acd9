"""A WebSocket client over a plain blocking socket, for what tornado's client will not do:
leave its socket unread (a small receive buffer, and nothing reads it), send frames that
break RFC 6455 (unmasked), and see the close frame's code however the server ends.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


@dataclass
class Ending:
    """What a socket read to its end gave: the messages, and how it was closed (``code``
    None: no close frame came, the connection just ended)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    code: int | None = None
    reason: str = ""


class RawSocket:
    """One WebSocket connection to ``/ws``; every read has a deadline."""

    def __init__(self, port: int, *, rcvbuf: int | None = None, path: str = "/ws",
                 timeout: float = 10) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:  # before connect: the window the server sees stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\n"
                          b"Host: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                          % (port, key))
        self.buffer = bytearray()
        self.pos = 0  # what is read of buffer
        head = self._until(b"\r\n\r\n", timeout)
        if not head.startswith(b"HTTP/1.1 101"):
            raise AssertionError(f"no WebSocket handshake: {head!r}")

    def close(self) -> None:
        self.sock.close()

    def abort(self) -> None:
        """Close with a reset (SO_LINGER 0), as a client that crashes or loses its network."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def send_text(self, text: str, *, masked: bool = True) -> None:
        self.send_frame(text.encode(), masked=masked)

    def send_frame(self, payload: bytes, *, opcode: int = TEXT, masked: bool = True) -> None:
        """One final frame of ``payload`` as it is, valid UTF-8 or not."""
        head = bytes([0x80 | opcode])
        mask_bit = 0x80 if masked else 0
        n = len(payload)
        if n < 126:
            head += bytes([mask_bit | n])
        elif n <= 0xFFFF:
            head += bytes([mask_bit | 126]) + struct.pack("!H", n)
        else:
            head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
        if masked:
            mask = os.urandom(4)
            head += mask
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + payload)

    def send_json(self, msg_type: str, content: dict[str, Any], *, masked: bool = True) -> None:
        self.send_text(json.dumps({"header": {"msg_type": msg_type}, "content": content}),
                       masked=masked)

    def _fill(self, deadline: float) -> bool:
        """Read more into the buffer; False at the end of the connection."""
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(1 << 20)
        except ConnectionResetError:
            return False
        if self.pos > len(self.buffer) // 2:
            del self.buffer[:self.pos]
            self.pos = 0
        self.buffer += chunk
        return bool(chunk)

    def _until(self, marker: bytes, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.buffer:
            if not self._fill(deadline):
                raise AssertionError(f"connection ended before {marker!r}: {self.buffer!r}")
        head, _, rest = bytes(self.buffer).partition(marker)
        self.buffer = bytearray(rest)
        return head

    def _take(self, n: int, deadline: float) -> bytes | None:
        while len(self.buffer) - self.pos < n:
            if not self._fill(deadline):
                return None
        data = bytes(self.buffer[self.pos:self.pos + n])
        self.pos += n
        return data

    def read_frame(self, timeout: float = 10) -> tuple[int, bytes] | None:
        """The next frame as (opcode, payload), or None if the connection ended."""
        deadline = time.monotonic() + timeout
        head = self._take(2, deadline)
        if head is None:
            return None
        n = head[1] & 0x7F
        if n == 126 or n == 127:
            size = 2 if n == 126 else 8
            raw = self._take(size, deadline)
            if raw is None:
                return None
            n = int.from_bytes(raw, "big")
        payload = self._take(n, deadline)
        return None if payload is None else (head[0] & 0x0F, payload)

    def read_to_end(self, timeout: float = 30) -> Ending:
        """Every message up to the close frame (or the end of the connection)."""
        deadline = time.monotonic() + timeout
        ending = Ending()
        while (frame := self.read_frame(max(0.01, deadline - time.monotonic()))) is not None:
            opcode, payload = frame
            if opcode == TEXT:
                ending.messages.append(json.loads(payload))
            elif opcode == CLOSE:
                if len(payload) >= 2:
                    ending.code = struct.unpack("!H", payload[:2])[0]
                    ending.reason = payload[2:].decode(errors="replace")
                break
        return ending

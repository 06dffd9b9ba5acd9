"""The channels WebSocket's two formats, which channel each message type travels on, and the
header a client's request goes on with.

- ``v1.kernel.websocket.jupyter.org`` (binary frames, chosen by subprotocol): a little-endian
  u64 count of offsets, the offsets (u64 each), then the channel name and the JSON header,
  parent header, metadata, content and buffers, each from its offset to the next.
- Legacy (no subprotocol; what jupyter_server's ``GatewayClient`` speaks): one JSON text
  frame per message, ``{"header", "parent_header", "metadata", "content", "channel"}``; a
  message with buffers (a widget's bytes) is one binary frame instead, as jupyter_server
  writes it for such clients: a big-endian u32 count of parts, their offsets (u32 each), then
  the message's JSON and its buffers, each from its offset to the next (or the end). The
  gateway sends one only with ``--legacy-buffers`` (channels.py): jupyter_server's
  ``GatewayClient`` reads no binary frame.

Buffers are raw bytes, carried as they are, in order, both ways (``msg["buffers"]``).
"""

from __future__ import annotations

import json
import struct
from typing import Any

from protocol import msgtypes as mt
from protocol.msgtypes import PROTOCOL_VERSION
from protocol.wire import utcnow_iso

from ..ws import MAX_HEADER_FIELD

V1 = "v1.kernel.websocket.jupyter.org"
PARTS = ("header", "parent_header", "metadata", "content")
SHELL_REPLIES = frozenset({mt.EXECUTE_REPLY, mt.KERNEL_INFO_REPLY, "comm_info_reply",
                           "complete_reply", "inspect_reply", "is_complete_reply",
                           "history_reply"})
CONTROL_REPLIES = frozenset({mt.INTERRUPT_REPLY, mt.SHUTDOWN_REPLY})
#: What a kernel's comms send: the only output that carries buffers to a Jupyter client.
COMM_OUTPUT = frozenset({mt.COMM_OPEN, mt.COMM_MSG, mt.COMM_CLOSE})
#: Cellbus-only types a Jupyter client has no use for.
HIDDEN = frozenset({mt.INTERACT_START, mt.INTERACT_END, mt.INTERACT_REPLY, mt.SESSION_CLOSED})
#: Most parts a client's binary frame may have (its buffers are all but the first few).
MAX_PARTS = 64


class WireError(ValueError):
    """A frame from a client that is no message in either format."""


def channel_of(msg_type: str) -> str:
    if msg_type in SHELL_REPLIES:
        return "shell"
    if msg_type in CONTROL_REPLIES:
        return "control"
    if msg_type == "input_request":
        return "stdin"
    return "iopub"


def encode(msg: dict[str, Any], channel: str, *, binary: bool) -> str | bytes:
    """One message as a frame of the chosen format, with its buffers (``msg["buffers"]``)."""
    buffers = [bytes(b) for b in msg.get("buffers") or ()]
    if not binary:
        text = json.dumps({**{k: msg[k] for k in PARTS}, "channel": channel,
                           "msg_id": msg["header"].get("msg_id"),
                           "msg_type": msg["header"].get("msg_type"), "buffers": []},
                          default=str)
        if not buffers:
            return text
        # jupyter_server's binary message for a legacy client: the JSON, then the buffers.
        parts = [text.encode()] + buffers
        offsets = [4 * (1 + len(parts))]
        for part in parts[:-1]:
            offsets.append(offsets[-1] + len(part))
        return struct.pack(f">{len(parts) + 1}I", len(parts), *offsets) + b"".join(parts)
    parts = [channel.encode()] + [json.dumps(msg[k], default=str).encode() for k in PARTS]
    parts += buffers
    offsets = [8 * (1 + len(parts) + 1)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    return struct.pack(f"<{len(offsets) + 1}Q", len(offsets), *offsets) + b"".join(parts)


def decode(frame: str | bytes, *, v1: bool) -> tuple[str, dict[str, Any]]:
    """``(channel, message)`` from a client's frame, its buffers as ``msg["buffers"]``: on a
    ``v1`` socket a v1 frame; on a legacy one, JSON text, or jupyter_server's binary message
    (a message with buffers)."""
    try:
        if isinstance(frame, bytes) and v1:
            chunks = _parts(frame, "<Q", 8, "v1")
            if len(chunks) < 5:
                raise WireError("a v1 frame needs a channel, header, parent, metadata, content")
            channel = chunks[0].decode()
            msg = {k: json.loads(c) for k, c in zip(PARTS, chunks[1:5])}
            buffers = chunks[5:]
        else:
            buffers = []
            if isinstance(frame, bytes):  # legacy, with buffers: the JSON is the first part
                chunks = _parts(frame, ">I", 4, "binary")
                # (the offsets of jupyter_server's start each part; the last runs to the end)
                frame, buffers = chunks[0].decode(), chunks[1:]
            msg = json.loads(frame)
            if not isinstance(msg, dict):
                raise WireError("a message must be a JSON object")
            channel = msg.get("channel", "")
    except (struct.error, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WireError(f"the frame cannot be read: {e}") from None
    if not isinstance(channel, str) or not all(isinstance(msg.get(k), dict) for k in PARTS[:1]):
        raise WireError("a message needs a channel and a header")
    for key in PARTS[1:]:
        if not isinstance(msg.get(key), dict):
            msg[key] = {}
    msg["buffers"] = buffers
    return channel, msg


def _parts(frame: bytes, number: str, width: int, kind: str) -> list[bytes]:
    """The parts of a binary frame: a count, then that many offsets (``number``, ``width``
    bytes each). A v1 frame's offsets end with the frame's end (one more than its parts);
    a legacy binary message's start each part, the last part running to the frame's end."""
    (count,) = struct.unpack_from(number, frame)
    if not 1 <= count <= MAX_PARTS or len(frame) < width * (count + 1):
        raise WireError(f"the {kind} frame's offset table is malformed")
    offsets = list(struct.unpack_from(f"{number[0]}{count}{number[1]}", frame, width))
    if kind != "v1":
        offsets.append(len(frame))
    if offsets != sorted(offsets) or offsets[0] < width * (count + 1) or (
            offsets[-1] > len(frame)):
        raise WireError(f"the {kind} frame's offsets are out of order or too large")
    return [frame[a:b] for a, b in zip(offsets, offsets[1:])]


def client_header(request: dict[str, Any], client: str) -> dict[str, Any] | None:
    """The header a client's request goes on with (dated now), if it names its msg_id and
    msg_type. The rest is filled in where a client left it out or sent another type, as a
    Jupyter server passes such a header on: jupyter_server's ``GatewayKernelClient`` (what
    nbclient runs a notebook through on a gateway) sends ``date`` as a number of seconds."""
    header = dict(request["header"])
    if not all(isinstance(header.get(k), str) and len(header[k]) <= MAX_HEADER_FIELD
               for k in ("msg_id", "msg_type")):
        return None
    for key, default in (("session", client), ("username", ""), ("version", PROTOCOL_VERSION)):
        if not isinstance(header.get(key), str) or len(header[key]) > MAX_HEADER_FIELD:
            header[key] = default
    header["date"] = utcnow_iso()
    return header

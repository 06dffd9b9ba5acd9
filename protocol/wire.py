"""The wire: framing, packing, HMAC signing and validation of bus messages.

One :class:`Session` owns all of it, as ``jupyter_client.session.Session`` does; no other
module builds or parses raw frames. A message on a ZeroMQ socket is a list of frames::

    [ident, ...]        routing identities added by ROUTER sockets (zero or more)
    b"<IDS|MSG>"        delimiter
    signature           hex HMAC-SHA256 (ASCII) over the four dict frames below, in order
    header              packed dict: msg_id, msg_type, session, username, date, version
    parent_header       packed dict: the header of the message this one answers, or {}
    metadata            packed dict; cellbus's routing facts live in metadata["cellbus"]
    content             packed dict: the msg_type's payload
    buffer, ...         raw bytes, not signed (as in Jupyter)

Packing is msgpack between cellbus nodes and JSON towards Jupyter kernels and browsers; with
``packer="json"`` the frames are byte-for-byte what ``jupyter_client`` produces and accepts.

:meth:`Session.serialize` and :meth:`Session.deserialize` are pure (lists of bytes in and
out); :meth:`Session.send` and :meth:`Session.recv` are thin wrappers for a
:class:`~protocol.sockets.BusSocket`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import msgpack
import zmq

from . import bounded
from .errors import ProtocolError
from .msgtypes import DELIM, PROTOCOL_VERSION
from .packing import packer
from .recent import forget_oldest
from .sockets import BusSocket

Message = dict[str, Any]
Packer = Literal["msgpack", "json"]

#: Largest single frame accepted, in bytes. A file announced by a session travels as a
#: buffer, so this bounds the largest file a cell can hand back as well.
DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024
#: Most values a msgpack frame from the broker may decode into (see :mod:`protocol.bounded`):
#: its replies carry stored output, bounded by the frame's bytes, not by the cap for bytes a
#: session or peer could shape (no value takes less than a byte).
FROM_BROKER_MAX_VALUES = DEFAULT_MAX_FRAME_SIZE
#: Signatures remembered to reject replays; the oldest are forgotten first.
DEFAULT_REPLAY_HISTORY = 65536
#: Retired bus keys a node remembers, to name them when a message signed with one comes.
MAX_RETIRED = 4
HEADER_FIELDS = ("msg_id", "msg_type", "session", "username", "date", "version")

#: The last whole second formatted, (seconds, "YYYY-MM-DDTHH:MM:SS"): every message has a
#: date, and strftime is most of what stamping one costs.
_second: tuple[int, str] = (0, "")


def utcnow_iso() -> str:
    """The current time as Jupyter writes it: ISO 8601, microseconds, ``Z``."""
    global _second
    now = time.time()
    whole = int(now)
    second = _second
    if second[0] != whole:
        second = _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{second[1]}.{int((now - whole) * 1e6):06d}Z"


#: The bits :func:`uuid.uuid4` fixes: version 4 (bits 76-79) and the RFC 4122 variant
#: (bits 62-63), as ``uuid.UUID(bytes=..., version=4)`` sets them.
_UUID4_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET = (4 << 76) | (0x8000 << 48)


def new_id() -> str:
    """A fresh ``uuid.uuid4().hex`` (the same 32 hex digits, version and variant bits), made
    without the ``UUID`` object: every message built needs one, and building and checking
    that object cost more than the 16 random bytes (bench/RESULTS.md, issue 25, twelfth
    pass)."""
    n = int.from_bytes(os.urandom(16), "big")
    return f"{n & _UUID4_KEEP | _UUID4_SET:032x}"


def _json_pack(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")


def _json_unpack(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))


#: Packs like ``msgpack.packb(obj, use_bin_type=True)``, without a new Packer per frame.
_msgpack_pack = packer(use_bin_type=True)


_PACKERS: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    # bounded.unpack itself, not a function around it: a peer's frame must not decode into
    # gigabytes, and a call more per frame is a cost per frame of every message taken.
    "msgpack": (_msgpack_pack, bounded.unpack),
    "json": (_json_pack, _json_unpack),
}


def parent_header(parent: Mapping[str, Any] | None) -> dict[str, Any]:
    """The header to use as ``parent_header``, given a message or a header (or None)."""
    if not parent:
        return {}
    if "header" in parent:
        return dict(parent["header"])
    return dict(parent)


def keyed_hmac(key: bytes) -> Any:
    """The keyed HMAC-SHA256 state that signing copies for each message. When OpenSSL backs
    ``hmac`` its C object is ``_hmac``: used directly, a copy, four updates and a hexdigest
    are five C calls instead of five Python methods wrapping them (a node signs or checks
    every message it sends or takes). Any other ``hmac`` has the same methods on the
    wrapper."""
    keyed = hmac.new(key, digestmod=hashlib.sha256)
    return getattr(keyed, "_hmac", None) or keyed


class _Verifier:
    """Checks signatures made with one key other than the one this node signs with."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._hmac = keyed_hmac(key)

    def verifies(self, signature: bytes, parts: Sequence[bytes]) -> bool:
        h = self._hmac.copy()
        for part in parts:
            h.update(part)
        return hmac.compare_digest(signature, h.hexdigest().encode("ascii"))


def _frame_bytes(frame: Any) -> bytes:
    """One frame as bytes; anything but bytes-like data is a malformed frame, not a bug."""
    if isinstance(frame, zmq.Frame):
        return frame.bytes
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return bytes(frame)
    raise ProtocolError("frames", f"a frame is a {type(frame).__name__}, not bytes")


class Session:
    """Builds, signs, packs and checks bus messages with one deployment key.

    :param key: the deployment key; an empty key is refused, since cellbus never runs unsigned.
    :param packer: ``"msgpack"`` (between cellbus nodes) or ``"json"`` (Jupyter, browsers).
    :param session_id: ``header["session"]`` of messages built here; a fresh uuid by default.
    :param max_frame_size: frames above this many bytes raise ``ProtocolError("oversize")``.
    :param max_values: most values one msgpack frame may decode into (see
        :mod:`protocol.bounded`); past it, ``ProtocolError("oversize")``. The default is for
        peers whose bytes could be crafted; :data:`FROM_BROKER_MAX_VALUES` for the broker's.
    :param replay_history: how many accepted signatures are remembered to reject replays.
    :param accept: more keys whose signatures verify, while a bus key is rotated (README's
        "Rotating keys"); messages are signed with ``key`` only. See :meth:`rekey`.
    """

    def __init__(
        self,
        key: bytes,
        packer: Packer = "msgpack",
        *,
        session_id: str | None = None,
        username: str = "cellbus",
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        replay_history: int = DEFAULT_REPLAY_HISTORY,
        max_values: int = bounded.DEFAULT_MAX_ITEMS,
        accept: Sequence[bytes] = (),
    ) -> None:
        if packer not in _PACKERS:
            raise ValueError(f"unknown packer {packer!r}; use 'msgpack' or 'json'")
        self.packer = packer
        self.pack, self.unpack = _PACKERS[packer]
        if packer == "msgpack" and max_values != bounded.DEFAULT_MAX_ITEMS:
            self.unpack = functools.partial(bounded.unpack, max_items=max_values)
        self.session_id = session_id or str(uuid.uuid4())
        self.username = username
        self.max_frame_size = max_frame_size
        self.replay_history = replay_history
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        #: Keys no longer accepted since a :meth:`rekey`, newest last: a message signed with
        #: one is still dropped, with a line that says so (not "another deployment key").
        self._retired: list[_Verifier] = []
        #: The key messages are signed with, and the others that verify (:meth:`rekey`).
        self.key: bytes = b""
        self.accepted: tuple[bytes, ...] = ()
        self.rekey(key, accept)

    def rekey(self, key: bytes, accept: Sequence[bytes] = ()) -> None:
        """Sign with ``key`` from now on, and verify with it or any of ``accept``: the three
        steps of a rotation (a new key accepted, then signing, then the old one dropped) are
        three reloads of the key file, each on every node, so no node ever drops what another
        signed (SIGHUP, :mod:`protocol.rekey`). A key dropped is remembered as retired."""
        if not isinstance(key, bytes) or not key or not all(accept):
            raise ValueError("Session needs a non-empty key: cellbus never sends unsigned messages")
        kept = {key, *accept}
        retired = [k for k in (self.key, *self.accepted) if k and k not in kept]
        self._retired = [h for h in self._retired if h.key not in kept]
        self._retired += [_Verifier(k) for k in retired]
        del self._retired[:-MAX_RETIRED]
        self.key = key
        self.accepted = tuple(k for k in dict.fromkeys(accept) if k != key)
        self._hmac = keyed_hmac(key)
        self._verifiers = [_Verifier(k) for k in self.accepted]

    # -- building ---------------------------------------------------------------------------

    def msg_header(self, msg_type: str) -> dict[str, Any]:
        return {
            "msg_id": new_id(),
            "msg_type": msg_type,
            "session": self.session_id,
            "username": self.username,
            "date": utcnow_iso(),
            "version": PROTOCOL_VERSION,
        }

    def msg(
        self,
        msg_type: str,
        content: Mapping[str, Any] | None = None,
        parent: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        header: Mapping[str, Any] | None = None,
    ) -> Message:
        """A new message dict, with the same keys as ``jupyter_client.Session.msg``."""
        hdr = dict(header) if header is not None else self.msg_header(msg_type)
        return {
            "header": hdr,
            "msg_id": hdr["msg_id"],
            "msg_type": hdr["msg_type"],
            "parent_header": parent_header(parent),
            "content": dict(content) if content is not None else {},
            "metadata": dict(metadata) if metadata is not None else {},
        }

    # -- wire -------------------------------------------------------------------------------

    def sign(self, frames: Sequence[bytes]) -> bytes:
        h = self._hmac.copy()
        for frame in frames:
            h.update(frame)
        return h.hexdigest().encode("ascii")

    def serialize(self, msg: Mapping[str, Any], idents: Iterable[bytes] = ()) -> list[bytes]:
        """The frames for ``msg`` (see the module docstring), signed with this key.

        A message the packer cannot represent (a lone surrogate in a string, an integer
        beyond 64 bits, nesting past the packer's limit, a non-finite float in JSON, an
        object of no packable type) raises ``ProtocolError("content")``: such values can
        come from untrusted input, and a node must refuse them, not crash on them.
        """
        try:
            parts = [
                self.pack(msg["header"]),
                self.pack(msg.get("parent_header") or {}),
                self.pack(msg.get("metadata") or {}),
                self.pack(msg.get("content") or {}),
            ]
            buffers = [_frame_bytes(b) for b in msg.get("buffers") or ()]
        except (TypeError, ValueError, OverflowError, RecursionError) as e:
            raise ProtocolError("content", f"cannot pack {msg.get('msg_type', 'message')}: "
                                f"{type(e).__name__}: {str(e)[:200]}") from None
        frames = [*idents, DELIM, self.sign(parts), *parts]
        frames.extend(buffers)
        return frames

    def deserialize(self, frames: Sequence[bytes | zmq.Frame]) -> tuple[list[bytes], Message]:
        """Check and decode ``frames``; raise :class:`ProtocolError` on anything wrong.

        The checks run cheapest first and before any decoding: delimiter and frame count,
        frame sizes, signature, replay. A signature is remembered only once it verified.
        """
        raw = [f if type(f) is bytes else _frame_bytes(f) for f in frames]
        try:
            at = raw.index(DELIM)
        except ValueError:
            raise ProtocolError("frames", "no <IDS|MSG> delimiter") from None
        idents, body = raw[:at], raw[at + 1:]
        if len(body) < 5:
            raise ProtocolError("frames", f"{len(body)} frames after the delimiter, need 5")
        if max(map(len, body)) > self.max_frame_size:
            i, frame = next((i, f) for i, f in enumerate(body) if len(f) > self.max_frame_size)
            raise ProtocolError(
                "oversize", f"frame {i} is {len(frame)} bytes, limit {self.max_frame_size}")
        signature, parts, buffers = body[0], body[1:5], body[5:]
        if not signature:
            raise ProtocolError("signature", "unsigned message")
        if not hmac.compare_digest(signature, self.sign(parts)) and not any(
                v.verifies(signature, parts) for v in self._verifiers):
            if any(v.verifies(signature, parts) for v in self._retired):
                raise ProtocolError("signature", "signed with a bus key this node retired "
                                    "(its --key-file was rotated): the sender still has the "
                                    "old key; copy the new key file there and send it SIGHUP")
            raise ProtocolError("signature", "signature does not match")
        if signature in self._seen:
            raise ProtocolError("replay", "signature already seen")
        self._remember(signature)
        decoded = []
        for name, part in zip(("header", "parent_header", "metadata", "content"), parts):
            try:
                value = self.unpack(part)
            except (ValueError, TypeError, RecursionError, msgpack.ExtraData,
                    msgpack.FormatError, msgpack.StackError) as e:
                raise ProtocolError("decode", f"{name}: {type(e).__name__}") from None
            except ProtocolError as e:  # msgpack's bounded decoder says why itself
                raise ProtocolError(e.reason, f"{name}: {e.detail}") from None
            if not isinstance(value, dict):
                raise ProtocolError("decode", f"{name} is {type(value).__name__}, not a dict")
            decoded.append(value)
        header, parent, metadata, content = decoded
        get = header.get  # HEADER_FIELDS, checked without a comprehension's frame per message
        if not (isinstance(get("msg_id"), str) and isinstance(get("msg_type"), str)
                and isinstance(get("session"), str) and isinstance(get("username"), str)
                and isinstance(get("date"), str) and isinstance(get("version"), str)
                and header["msg_type"]):
            missing = [f for f in HEADER_FIELDS if not isinstance(header.get(f), str)]
            raise ProtocolError("header", f"header lacks {', '.join(missing) or 'msg_type'}")
        msg: Message = {
            "header": header,
            "msg_id": header["msg_id"],
            "msg_type": header["msg_type"],
            "parent_header": parent,
            "metadata": metadata,
            "content": content,
            "buffers": buffers,
        }
        return idents, msg

    def _remember(self, signature: bytes) -> None:
        self._seen[signature] = None
        forget_oldest(self._seen, self.replay_history)

    # -- sockets ----------------------------------------------------------------------------

    async def send(self, sock: BusSocket, msg: Mapping[str, Any],
                   idents: Iterable[bytes] = ()) -> None:
        await sock.send_frames(self.serialize(msg, idents))

    async def recv(self, sock: BusSocket) -> tuple[list[bytes], Message]:
        """Receive and check one message; raises :class:`ProtocolError` for bad input."""
        return self.deserialize(await sock.recv_frames())

"""What both store backends do alike with a message before and after it is stored, and the
argument checks of the :class:`~broker.store.base.Store` interface they share.

Messages, request messages and device info are msgpack blobs in every backend, so bytes stay
bytes and keys are data (never SQL or MongoDB operators); only the facts a store indexes
(:func:`header_facts`) are kept beside the blob.
"""

from __future__ import annotations

from typing import Any

import msgpack

from protocol.packing import packer

from .base import Message
from .errors import StoreError
from .records import EXECUTE_REQUEST, Request


#: ``msgpack.packb(obj, use_bin_type=True, datetime=True)``, one Packer per thread reused.
_pack = packer(use_bin_type=True, datetime=True)


def pack(obj: Any) -> bytes:
    """``obj`` as a msgpack blob; a value msgpack cannot carry is a :class:`StoreError`."""
    try:
        data: bytes = _pack(obj)
    except (TypeError, ValueError, OverflowError) as e:
        raise StoreError(f"cannot store {type(obj).__name__}: {e}") from None
    return data


def unpack(data: bytes) -> Any:
    """A blob made by :func:`pack`, back as the value it was."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False, timestamp=3)


def header_facts(msg: Message) -> tuple[str | None, str | None]:
    """The parent msg_id and the msg_type of a Jupyter message, if it has them."""
    parent_header = msg.get("parent_header")
    header = msg.get("header")
    parent = parent_header.get("msg_id") if isinstance(parent_header, dict) else None
    msg_type = header.get("msg_type") if isinstance(header, dict) else None
    return (parent if isinstance(parent, str) else None,
            msg_type if isinstance(msg_type, str) else msg.get("msg_type"))


def check_limit(limit: int | None) -> None:
    """A ``limit`` (or ``newest``) argument must be None or not negative."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be None or >= 0, not {limit}")


def _own_code(msg_type: str, message: Any) -> str | None:
    """The code an execute request's message carries (None for any other request)."""
    content = message.get("content") if isinstance(message, dict) else None
    code = content.get("code") if isinstance(content, dict) else None
    return code if msg_type == EXECUTE_REQUEST and isinstance(code, str) else None


def stored_input(req: Request) -> str:
    """A request's ``input`` as stored: "" where it is the code its own message carries
    (every execute request the broker accepts), which :func:`read_input` gives back, so the
    code is not stored twice in one row."""
    return "" if req.input == _own_code(req.msg_type, req.message) else req.input


def read_input(msg_type: str, stored: str, message: Any) -> str:
    """A request's ``input`` from its stored value (see :func:`stored_input`)."""
    return (_own_code(msg_type, message) or "") if stored == "" else stored

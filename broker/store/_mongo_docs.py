"""MongoDB documents <-> the store's records, for :mod:`broker.store.mongodb`.

Messages, request messages and device info are msgpack blobs (as in the SQLite store);
the record fields beside them are top-level fields of the document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, Final

from ._rows import pack, read_input, unpack
from .errors import StoreError
from .records import DeviceRecord, Request, SessionRecord, UserRecord

#: Largest packed message: MongoDB's 16 MiB document limit less room for the other fields.
MAX_BLOB: Final = 16 * 1024 * 1024 - 64 * 1024
_REQUEST_FIELDS: Final = tuple(f.name for f in fields(Request))
_SESSION_FIELDS: Final = tuple(f.name for f in fields(SessionRecord))


def _blob(obj: Any, what: str) -> bytes:
    data = pack(obj)
    if len(data) > MAX_BLOB:
        raise StoreError(f"{what} is {len(data)} bytes packed; the MongoDB store takes at "
                         f"most {MAX_BLOB}")
    return data


def _loads(value: Any, what: str) -> Any:
    try:
        if isinstance(value, bytes):
            return unpack(value)
    except ValueError:  # every msgpack decoding error is one
        pass
    raise StoreError(f"{what} in MongoDB is not a msgpack blob: the database was changed "
                     "by something other than cellbus")


def _fields(doc: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The record fields of a document (None for any missing)."""
    return {name: doc.get(name) for name in names}


def _request(doc: Mapping[str, Any]) -> Request:
    values = _fields(doc, _REQUEST_FIELDS)
    values["message"] = _loads(values["message"], f"request {values['msg_id']!r}")
    values["input"] = read_input(values["msg_type"], values["input"], values["message"])
    return Request(**values)


def _session(doc: Mapping[str, Any]) -> SessionRecord:
    return SessionRecord(**_fields(doc, _SESSION_FIELDS))


def _device(doc: Mapping[str, Any]) -> DeviceRecord:
    values = _fields(doc, ("device", "capacity", "load", "last_heartbeat", "info"))
    values["info"] = _loads(values["info"], f"device {values['device']!r}")
    return DeviceRecord(**values)


def _user(doc: Mapping[str, Any]) -> UserRecord:
    return UserRecord(**_fields(doc, ("name", "token_hash", "created")))

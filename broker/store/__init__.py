"""The broker's persistent store: the durable buffer behind the bus's channels.

``open_store(url)`` picks the backend by URL scheme; every backend implements
:class:`~broker.store.base.Store` and passes ``tests/test_store_contract.py``::

    async with open_store(default_sqlite_url()) as store:
        await store.add_request(req)          # durable when it returns: now answer 202
        seqs = await store.append_messages([(session, msg)])   # durable: now publish
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from ._mongo_url import CONNECT_TIMEOUT
from ._sqlite_file import sqlite_url
from ._writer import MAX_BATCH, MAX_PENDING, WriterStats
from .base import Store, redact_url
from .errors import (DuplicateRequest, InvalidTransition, StoreClosed, StoreError, StoreFull,
                     StoreClaimed, StoreUnreachable, StoreUnwritable, UnknownRequest,
                     UnknownStore)
from .records import (ANY, CLOSED, DELETING, DONE, ERROR, EXECUTE_REQUEST, FINAL,
                      INTERACT_REQUEST, NEEDS_WORK, OPEN, STATUSES, SUPERSEDED, TRANSITIONS,
                      WORKING,
                      DeletedRuns, DeviceFilter, DeviceRecord, PermalinkRecord, Progress, Request,
                      SessionRecord, UserRecord, check_transition)

#: The URL forms open_store accepts, for error messages and ``--help``.
ACCEPTED: str = ("sqlite:///absolute/path/cellbus.db, "
                 "mongodb://host[:port]/db[?replicaSet=NAME]")


def open_store(url: str, *, connect_timeout: float = CONNECT_TIMEOUT) -> Store:
    """A store for ``url``, not yet opened (``await store.open()`` or ``async with``).
    ``connect_timeout``: seconds a MongoDB store's ``open()`` waits for the server's first
    answer before it raises :class:`StoreUnreachable` (a SQLite store waits on nothing).

    Raises :class:`UnknownStore` naming the URL and what to use instead.
    """
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme == "sqlite":
        from .sqlite import SQLiteStore
        return SQLiteStore(url)
    if scheme in ("mongodb", "mongodb+srv"):
        try:
            from .mongodb import MongoStore
        except ImportError as e:
            raise UnknownStore(
                f"the MongoDB store ({redact_url(url)}) needs pymongo>=4.13, which is not "
                f"installed ({e}): pip install 'cellbus[mongodb]'; or use the embedded store: "
                f"{sqlite_url(default_sqlite_path())}") from None
        return MongoStore(url, connect_timeout=connect_timeout)
    raise UnknownStore(f"unknown store URL {redact_url(url)!r}: accepted forms are {ACCEPTED}")


def default_sqlite_path() -> Path:
    """``$XDG_DATA_HOME/cellbus/cellbus.db`` (else ``~/.local/share/...``); no side effects."""
    base = os.environ.get("XDG_DATA_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "cellbus" / "cellbus.db"


def default_sqlite_url() -> str:
    """The URL of the embedded default store; creates its directory (mode 0700)."""
    path = default_sqlite_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return sqlite_url(path)


__all__ = [
    "ACCEPTED", "ANY", "CLOSED", "CONNECT_TIMEOUT", "DELETING", "DONE", "ERROR",
    "EXECUTE_REQUEST", "FINAL",
    "INTERACT_REQUEST", "MAX_BATCH", "MAX_PENDING", "NEEDS_WORK", "OPEN", "STATUSES",
    "SUPERSEDED", "TRANSITIONS", "WORKING", "DeletedRuns", "DeviceFilter", "DeviceRecord",
    "DuplicateRequest",
    "InvalidTransition", "PermalinkRecord", "Progress", "Request", "SessionRecord", "Store",
    "StoreClosed",
    "StoreError",
    "StoreFull", "StoreClaimed", "StoreUnreachable", "StoreUnwritable", "UnknownRequest",
    "UnknownStore",
    "UserRecord", "WriterStats",
    "check_transition",
    "default_sqlite_path", "default_sqlite_url", "open_store", "sqlite_url",
]

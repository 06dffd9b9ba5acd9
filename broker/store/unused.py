"""Whether a store URL names a store no broker has opened, for ``bin/cellbus user``.

A typo in ``--store`` (or another Unix user's default SQLite file) names a store no broker
reads: users added there never sign in, and a listing of it says "0 users", so the command
must say so instead. A SQLite store is unused when its file does not exist; a MongoDB store
when its database has no ``requests`` collection, which a broker's first open makes
(:mod:`._mongo_schema`). For MongoDB the answer also names the server's databases that do
hold a cellbus store, the likely meant one. Nothing is created either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ._mongo_url import CONNECT_TIMEOUT
from ._sqlite_file import sqlite_path


@dataclass(frozen=True)
class Unused:
    """A store no broker has opened: ``where`` it would be (``at /path/cellbus.db``, ``in
    database 'x' on mongodb://host/x``), and ``hint``, the stores there are instead."""

    where: str
    hint: str = ""


async def unused_store(url: str, timeout: float = CONNECT_TIMEOUT) -> Unused | None:
    """:class:`Unused` when no broker has opened the store ``url`` names, else None (also
    for a URL no store accepts, which :func:`~broker.store.open_store` then refuses).
    A MongoDB server that gives no answer within ``timeout`` seconds raises
    :class:`~broker.store.errors.StoreUnreachable`."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    if scheme == "sqlite":
        path = sqlite_path(url)
        return None if path.exists() else Unused(f"at {path}")
    if scheme in ("mongodb", "mongodb+srv"):
        try:
            from ._mongo_probe import unused_database
        except ImportError:  # no pymongo: open_store says what to install
            return None
        return await unused_database(url, timeout)
    return None

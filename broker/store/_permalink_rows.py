"""The permalinks of both store backends, as mixins of :class:`~broker.store.base.Store`
(kept out of the backends' own modules, which hold the bus's channels)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from .records import PermalinkRecord

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], T]
_COLUMNS = "id, code, interact, owner, created"


def _from_row(row: Sequence[Any] | None) -> PermalinkRecord | None:
    if row is None:
        return None
    pid, code, interact, owner, created = row
    return PermalinkRecord(pid, code, json.loads(interact) if interact else None, owner, created)


class SQLitePermalinks:
    """``permalinks`` table of the SQLite store (schema in :mod:`._sqlite_file`)."""

    _write: Callable[[Op[Any]], Awaitable[Any]]
    _read: Callable[[Op[Any]], Awaitable[Any]]

    async def add_permalink(self, rec: PermalinkRecord) -> bool:
        values = (rec.id, rec.code, None if rec.interact is None else json.dumps(rec.interact),
                  rec.owner, rec.created)

        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute(f"INSERT OR IGNORE INTO permalinks ({_COLUMNS}) VALUES "
                                "(?, ?, ?, ?, ?)", values).rowcount > 0

        return bool(await self._write(op))

    async def get_permalink(self, permalink_id: str) -> PermalinkRecord | None:
        row = await self._read(lambda conn: conn.execute(
            f"SELECT {_COLUMNS} FROM permalinks WHERE id = ?", (permalink_id,)).fetchone())
        return _from_row(row)

    async def count_permalinks(self, owner: str) -> int:
        return int(await self._read(lambda conn: conn.execute(
            "SELECT COUNT(*) FROM permalinks WHERE owner = ?", (owner,)).fetchone()[0]))

    async def delete_permalink(self, permalink_id: str, owner: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM permalinks WHERE id = ? AND owner = ?",
                                (permalink_id, owner)).rowcount > 0

        return bool(await self._write(op))

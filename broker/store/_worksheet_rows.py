"""Deleting a worksheet's runs in the SQLite store (:meth:`Store.delete_worksheet`, asked by
:mod:`broker.deletion`), as a mixin of :class:`~broker.store.sqlite.SQLiteStore`; the
MongoDB store's is in :mod:`._mongo_tx`.

One write, so one transaction: a crash deletes all of it or nothing, and no reader sees a
worksheet with requests but no output. Every statement reads an index (schema in
:mod:`._sqlite_file`): ``requests_cell_kind`` by (user, worksheet), ``sessions_worksheet``,
the messages' primary key by session, and the primary keys of layouts and deliveries.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .records import NEEDS_WORK, WORKING, DeletedRuns

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], T]


def delete_worksheet_op(user: str, worksheet: str) -> Op[DeletedRuns | None]:
    """The write that deletes the worksheet's runs (None if one is unfinished)."""
    key = (user, worksheet)

    def op(conn: sqlite3.Connection) -> DeletedRuns | None:
        if conn.execute("SELECT 1 FROM requests WHERE user = ? AND worksheet = ? AND status "
                        "IN (?, ?) LIMIT 1", (*key, NEEDS_WORK, WORKING)).fetchone():
            return None
        sessions = [row[0] for row in conn.execute(
            "SELECT session FROM sessions WHERE user = ? AND worksheet = ?", key)]
        messages = sum(conn.execute("DELETE FROM messages WHERE session = ?",
                                    (session,)).rowcount for session in sessions)
        requests = conn.execute("DELETE FROM requests WHERE user = ? AND worksheet = ?",
                                key).rowcount
        layout = conn.execute("DELETE FROM layouts WHERE user = ? AND worksheet = ?",
                              key).rowcount > 0
        deliveries = conn.execute("DELETE FROM deliveries WHERE user = ? AND worksheet = ?",
                                  key).rowcount
        return DeletedRuns(requests, messages, layout, deliveries)

    return op


class SQLiteWorksheets:
    """:meth:`delete_worksheet` of the SQLite store."""

    _write: Callable[[Op[Any]], Awaitable[Any]]

    async def delete_worksheet(self, user: str, worksheet: str) -> DeletedRuns | None:
        result: DeletedRuns | None = await self._write(delete_worksheet_op(user, worksheet))
        return result

"""Deleting a worksheet's runs in the SQLite store (:meth:`Store.delete_worksheet`, asked by
:mod:`broker.deletion`), as a mixin of :class:`~broker.store.sqlite.SQLiteStore`; the
MongoDB store's is in :mod:`._mongo_tx`.

Two steps. The first write, one transaction, deletes the worksheet's requests, layout and
delivery positions and marks its sessions :data:`DELETING` (an open one is open no more):
from then on the worksheet is one never run, for every reader, and its next run opens a
fresh session. Then its sessions' messages go :data:`MESSAGES_AT_ONCE` at a time, one write
each: a worksheet with a million lines of output would otherwise hold the store's one
writer, and every other user's output, for seconds (300,000 messages took 1 s in one
transaction); a last write marks each session closed once its messages are gone. A broker
that stops between them leaves sessions marked ``deleting`` whose messages no view shows but
the user's bytes still count: at its next start it ends their deletion
(:meth:`finish_deletion`, broker/deletion.py), and only theirs: runs the worksheet made
since, in a session of its own, are not touched. Every statement reads
an index (schema in :mod:`._sqlite_file`): ``requests_cell_kind`` by (user, worksheet),
``sessions_worksheet``, the messages' primary key by session, and the primary keys of
layouts and deliveries.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .records import CLOSED, DELETING, NEEDS_WORK, WORKING, DeletedRuns

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], T]

#: Messages deleted in one write, after the first (a few tens of milliseconds' work).
MESSAGES_AT_ONCE = 5000


def delete_worksheet_op(user: str, worksheet: str
                        ) -> Op[tuple[DeletedRuns, list[str]] | None]:
    """The first write: the worksheet's requests, layout and deliveries (None, and nothing
    deleted, if a run of it is unfinished), and its sessions, marked :data:`DELETING`,
    whose messages go next."""
    key = (user, worksheet)

    def op(conn: sqlite3.Connection) -> tuple[DeletedRuns, list[str]] | None:
        if conn.execute("SELECT 1 FROM requests WHERE user = ? AND worksheet = ? AND status "
                        "IN (?, ?) LIMIT 1", (*key, NEEDS_WORK, WORKING)).fetchone():
            return None
        sessions = [row[0] for row in conn.execute(
            "SELECT session FROM sessions WHERE user = ? AND worksheet = ?", key)]
        conn.execute("UPDATE sessions SET state = ? WHERE user = ? AND worksheet = ?",
                     (DELETING, *key))
        requests = conn.execute("DELETE FROM requests WHERE user = ? AND worksheet = ?",
                                key).rowcount
        layout = conn.execute("DELETE FROM layouts WHERE user = ? AND worksheet = ?",
                              key).rowcount > 0
        deliveries = conn.execute("DELETE FROM deliveries WHERE user = ? AND worksheet = ?",
                                  key).rowcount
        return DeletedRuns(requests, 0, layout, deliveries), sessions

    return op


def delete_messages_op(session: str, at_most: int) -> Op[int]:
    """A later write: up to ``at_most`` of the session's messages, the oldest; how many."""
    def op(conn: sqlite3.Connection) -> int:
        last = conn.execute("SELECT seq FROM messages WHERE session = ? ORDER BY seq "
                            "LIMIT 1 OFFSET ?", (session, at_most - 1)).fetchone()
        if last is None:
            return conn.execute("DELETE FROM messages WHERE session = ?", (session,)).rowcount
        return conn.execute("DELETE FROM messages WHERE session = ? AND seq <= ?",
                            (session, last[0])).rowcount

    return op


def deleted_op(session: str) -> Op[None]:
    """The last write of a session's deletion: marked :data:`DELETING`, it is closed."""
    def op(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE sessions SET state = ? WHERE session = ? AND state = ?",
                     (CLOSED, session, DELETING))

    return op


async def delete_in_parts(sessions: list[str], part: Callable[[str, int], Awaitable[int]],
                          ended: Callable[[str], Awaitable[None]]) -> int:
    """Every message of ``sessions``, :data:`MESSAGES_AT_ONCE` at a time, each part deleted
    by ``part(session, at_most)`` (one write, answering how many), then ``ended(session)``
    (which closes it): how many messages in all."""
    deleted = 0
    for session in sessions:
        while (n := await part(session, MESSAGES_AT_ONCE)):
            deleted += n
            if n < MESSAGES_AT_ONCE:
                break
        await ended(session)
    return deleted


class SQLiteWorksheets:
    """:meth:`delete_worksheet` and :meth:`finish_deletion` of the SQLite store."""

    _write: Callable[[Op[Any]], Awaitable[Any]]

    async def delete_worksheet(self, user: str, worksheet: str) -> DeletedRuns | None:
        first = await self._write(delete_worksheet_op(user, worksheet))
        if first is None:
            return None
        deleted, sessions = first
        return dataclasses.replace(deleted, messages=await self._delete_sessions(sessions))

    async def finish_deletion(self, session: str) -> int:
        return await self._delete_sessions([session])

    async def _delete_sessions(self, sessions: list[str]) -> int:
        return await delete_in_parts(
            sessions, lambda session, at_most: self._write(delete_messages_op(session, at_most)),
            lambda session: self._write(deleted_op(session)))

"""The ``users`` table of the SQLite store (``--auth token``: each user's name and token
hash), as a mixin of :class:`~broker.store.sqlite.SQLiteStore`."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .records import UserRecord

Op = Callable[[sqlite3.Connection], Any]


class SQLiteUsers:
    _write: Callable[[Op], Awaitable[Any]]
    _read: Callable[[Op], Awaitable[Any]]

    # -- users ------------------------------------------------------------------------------

    async def put_user(self, rec: UserRecord) -> None:
        values = (rec.name, rec.token_hash, rec.created)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO users (name, token_hash, created) VALUES (?, ?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, "
                         "created = excluded.created", values)

        await self._write(op)

    async def get_user(self, name: str) -> UserRecord | None:
        return await self._read(lambda conn: _user(conn.execute(
            "SELECT name, token_hash, created FROM users WHERE name = ?", (name,)).fetchone()))

    async def user_by_token(self, token_hash: str) -> UserRecord | None:
        return await self._read(lambda conn: _user(conn.execute(
            "SELECT name, token_hash, created FROM users WHERE token_hash = ?",
            (token_hash,)).fetchone()))

    async def remove_user(self, name: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount > 0

        return await self._write(op)

    async def users(self) -> list[UserRecord]:
        return await self._read(lambda conn: [UserRecord(*r) for r in conn.execute(
            "SELECT name, token_hash, created FROM users ORDER BY name")])


def _user(row: Sequence[Any] | None) -> UserRecord | None:
    return None if row is None else UserRecord(*row)

"""Worksheet layouts of both store backends, as mixins of :class:`~broker.store.base.Store`:
each worksheet's cells in order, as its page last saved them (:mod:`broker.layouts`). A
layout is a note the page keeps, not work: no device and no kernel ever sees it.

SQLite: the ``layouts`` table (schema in :mod:`._sqlite_file`). MongoDB: the ``layouts``
collection, ``{_id: {user, worksheet}, cells: JSON text, updated}`` (JSON text, so that any
key a cell may have is safe in it, as the permalinks' interact values), indexed by
``_id.user`` (in :mod:`.mongodb`: ``_id``'s own index serves only whole keys) so that
counting a user's layouts for their quota (``--user-layouts``, :mod:`broker.quotas`) reads
no other user's.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], T]
#: A layout: the worksheet's cells in order, each ``{"id", "type", "code"}``.
Cells = list[dict[str, Any]]


class SQLiteLayouts:
    """``layouts`` table of the SQLite store."""

    _write: Callable[[Op[Any]], Awaitable[Any]]
    _read: Callable[[Op[Any]], Awaitable[Any]]

    async def put_layout(self, user: str, worksheet: str, cells: Cells) -> None:
        values = (user, worksheet, json.dumps(cells), time.time())
        await self._write(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO layouts (user, worksheet, cells, updated) "
            "VALUES (?, ?, ?, ?)", values))

    async def get_layout(self, user: str, worksheet: str) -> Cells | None:
        row = await self._read(lambda conn: conn.execute(
            "SELECT cells FROM layouts WHERE user = ? AND worksheet = ?",
            (user, worksheet)).fetchone())
        return None if row is None else list(json.loads(row[0]))

    async def delete_layout(self, user: str, worksheet: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM layouts WHERE user = ? AND worksheet = ?",
                                (user, worksheet)).rowcount > 0

        return bool(await self._write(op))

    async def count_layouts(self, user: str) -> int:
        # the primary key (user, worksheet) is the index this reads
        return int(await self._read(lambda conn: conn.execute(
            "SELECT COUNT(*) FROM layouts WHERE user = ?", (user,)).fetchone()[0]))


class MongoLayouts:
    """``layouts`` collection of the MongoDB store (its ``_id`` is the key)."""

    _open_db: Callable[[], Any]
    _errors: Callable[[str], contextlib.AbstractContextManager[None]]

    async def put_layout(self, user: str, worksheet: str, cells: Cells) -> None:
        with self._errors(f"store the layout of {user}/{worksheet}"):
            await self._open_db().layouts.replace_one(
                {"_id": {"user": user, "worksheet": worksheet}},
                {"cells": json.dumps(cells), "updated": time.time()}, upsert=True)

    async def get_layout(self, user: str, worksheet: str) -> Cells | None:
        with self._errors(f"read the layout of {user}/{worksheet}"):
            doc = await self._open_db().layouts.find_one(
                {"_id": {"user": user, "worksheet": worksheet}})
        return None if doc is None else list(json.loads(doc["cells"]))

    async def delete_layout(self, user: str, worksheet: str) -> bool:
        with self._errors(f"delete the layout of {user}/{worksheet}"):
            result = await self._open_db().layouts.delete_one(
                {"_id": {"user": user, "worksheet": worksheet}})
        return bool(result.deleted_count)

    async def count_layouts(self, user: str) -> int:
        with self._errors(f"count the layouts of {user}"):
            return int(await self._open_db().layouts.count_documents({"_id.user": user}))

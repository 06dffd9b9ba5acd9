"""The embedded store: one SQLite file in WAL mode, written by one group-committing thread.

URL: ``sqlite:///absolute/path/cellbus.db`` (odd characters %-quoted; see
:func:`~broker.store._sqlite_file.sqlite_url`). Durability is WAL + ``synchronous=NORMAL``:
every commit survives a crash or ``kill -9`` of the process (see :mod:`._sqlite_file`).

Writes never run on the event loop: one writer thread owns the write connection and takes
every queued operation into one transaction (:mod:`._writer`). Reads run on a second
connection owned by a one-thread executor; in WAL mode readers never wait for the writer.
Seqs are allocated from the ``seqs`` table inside the writer's ``BEGIN IMMEDIATE``
transaction, so they stay gap-free even when several processes write the same file.
Messages and request messages are stored as msgpack blobs: bytes stay bytes, tuples come
back as lists, timezone-aware datetimes round-trip.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from . import _sqlite_retention as _retention
from . import _sqlite_restore, _user_bytes
from ._sqlite_file import BUSY_TIMEOUT, connect, sqlite_path
from ._layout_rows import SQLiteLayouts
from ._sqlite_devices import SQLiteDevices
from ._sqlite_users import SQLiteUsers
from ._permalink_rows import SQLitePermalinks
from ._worksheet_rows import SQLiteWorksheets
from ._rows import check_limit, pack, stored_input, unpack
from ._sqlite_rows import (_REQ_COLS, _REQ_NAMES, _REQ_SLOTS, _SESSION_COLS, _append_op,
                           _progress_row, _put_session_op, _receipts_op, _request,
                           _update_row)
from ._writer import MAX_BATCH, MAX_PENDING, GroupCommitWriter, WriterStats
from .base import Message, Receipts, Stamp, StatusUpdate, Store
from .compaction import CompactionStats, SessionPlan
from .errors import (DuplicateRequest, InvalidTransition, StoreClosed, StoreError,
                     UnknownRequest)
from .records import (ANY, copied, EXECUTE_REQUEST, INTERACT_REQUEST, NEEDS_WORK, OPEN, STATUSES,
                      SUPERSEDED, WORKING, DeviceFilter, Progress, Request, SessionRecord)

T = TypeVar("T")


class SQLiteStore(SQLiteWorksheets, SQLitePermalinks, SQLiteLayouts, SQLiteDevices,
                  SQLiteUsers, Store):
    """The embedded store; ``max_batch`` operations per commit, ``max_pending`` queued."""

    def __init__(self, url: str, *, max_batch: int = MAX_BATCH,
                 max_pending: int = MAX_PENDING) -> None:
        super().__init__(url)
        self.path = sqlite_path(url)
        self.max_batch = max_batch
        self.max_pending = max_pending
        self._writer: GroupCommitWriter | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._rconn: sqlite3.Connection | None = None
        self._last_stats = WriterStats(0, 0, 0, 0)
        #: The file's auto_vacuum mode once open ("" before).
        self.auto_vacuum = ""
        self._floor = 0  # set when the file is opened (read on every replay otherwise)

    def describe(self) -> str:
        vacuum = {"": "", "incremental": ", auto_vacuum=INCREMENTAL"}.get(
            self.auto_vacuum, f", auto_vacuum={self.auto_vacuum.upper()}: retention cannot "
            "shrink the file (see broker/store/_sqlite_retention.py to convert it)")
        return (f"SQLite file {self.path} (WAL, synchronous=NORMAL, batches of "
                f"{self.max_batch}{vacuum})")

    @property
    def stats(self) -> WriterStats:
        """Commit and operation counters of the writer (kept after close)."""
        return self._writer.stats if self._writer is not None else self._last_stats

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        reader = ThreadPoolExecutor(1, thread_name_prefix="cellbus-store-reader")
        try:
            loop = asyncio.get_running_loop()
            wconn, rconn = await loop.run_in_executor(reader, connect, self.path)
            self.auto_vacuum = await loop.run_in_executor(reader, _retention.auto_vacuum, rconn)
            self._floor = await loop.run_in_executor(reader, _sqlite_restore.floor, rconn)
        except BaseException:
            reader.shutdown(wait=False)
            raise
        self._reader, self._rconn = reader, rconn
        self._writer = GroupCommitWriter(wconn, name=str(self.path), max_batch=self.max_batch,
                                         max_pending=self.max_pending)

    async def close(self) -> None:
        writer, reader, rconn = self._writer, self._reader, self._rconn
        if writer is None or reader is None or rconn is None:
            return
        self._writer = self._reader = self._rconn = None
        writer.stop()

        def finish() -> None:
            writer.join()  # every queued write committed, write connection closed
            rconn.close()  # after every read already queued on this thread

        try:
            await asyncio.get_running_loop().run_in_executor(reader, finish)
        finally:
            self._last_stats = writer.stats
            reader.shutdown(wait=False)  # its one thread is idle or finishing `finish`

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise StoreClosed(f"store {self.path} is closed")
        result: T = await self._writer.submit(op)
        return result

    async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        reader, conn = self._reader, self._rconn
        if reader is None or conn is None:
            raise StoreClosed(f"store {self.path} is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(reader, op, conn)
        except sqlite3.Error as e:
            raise StoreError(f"database error reading {self.path}: {e}") from e

    # -- requests ---------------------------------------------------------------------------

    async def add_request(self, req: Request) -> Request:
        return await self._write(self._add_request_op(req))

    def _add_request_op(self, req: Request, stamp: Stamp | None = None,
                        ) -> Callable[[sqlite3.Connection], Request]:
        """The write that inserts ``req`` (its message made by ``stamp`` in it, if given:
        :meth:`add_session_request`) and returns it as stored."""
        if req.status not in STATUSES:
            raise ValueError(f"unknown status {req.status!r}; one of {sorted(STATUSES)}")
        values = [getattr(req, name) for name in _REQ_NAMES]
        values[6] = stored_input(req)
        values[7] = None if stamp is not None else pack(req.message)
        if not req.created:
            values[10] = time.time()

        def op(conn: sqlite3.Connection) -> Request:
            message = req.message
            if stamp is not None:
                latest = conn.execute(
                    "SELECT msg_id FROM requests WHERE session = ? AND status IN (?, ?) AND "
                    "msg_type = ? ORDER BY id DESC LIMIT 1",
                    (req.session, NEEDS_WORK, WORKING, req.msg_type)).fetchone()
                message = stamp(latest[0] if latest is not None else None)
                values[6] = stored_input(copied(req, message=message))
                values[7] = pack(message)
            try:
                conn.execute(f"INSERT INTO requests ({_REQ_COLS}) VALUES ({_REQ_SLOTS})", values)
            except sqlite3.IntegrityError as e:
                if "requests.msg_id" in str(e):
                    raise DuplicateRequest(req.msg_id) from None
                raise StoreError(f"request {req.msg_id!r} cannot be stored: {e}") from None
            return copied(req, message=message, created=values[10])

        return op

    async def update_request(self, msg_id: str, status: str, *, device: str | None = None,
                             error: str | None = None) -> Request:
        return await self._write(lambda conn: _update_row(conn, msg_id, status, device, error))

    async def assign_request(self, msg_id: str, device: str) -> Request:
        def op(conn: sqlite3.Connection) -> Request:
            row = conn.execute(
                f"UPDATE requests SET device = ? WHERE msg_id = ? AND status = ? "
                f"RETURNING {_REQ_COLS}", (device, msg_id, NEEDS_WORK)).fetchone()
            if row is not None:
                return _request(row)
            old = conn.execute("SELECT status FROM requests WHERE msg_id = ?",
                               (msg_id,)).fetchone()
            if old is None:
                raise UnknownRequest(msg_id)
            raise InvalidTransition(msg_id, old[0], NEEDS_WORK, frozenset())

        return await self._write(op)

    async def get_request(self, msg_id: str) -> Request | None:
        def op(conn: sqlite3.Connection) -> Request | None:
            row = conn.execute(f"SELECT {_REQ_COLS} FROM requests WHERE msg_id = ?",
                               (msg_id,)).fetchone()
            return None if row is None else _request(row)

        return await self._read(op)

    async def cell_request(self, user: str, worksheet: str, cell_id: str) -> Request | None:
        def op(conn: sqlite3.Connection) -> Request | None:
            row = conn.execute(
                f"SELECT {_REQ_COLS} FROM requests WHERE user = ? AND worksheet = ? AND "
                "cell_id = ? AND msg_type = ? ORDER BY id DESC LIMIT 1",
                (user, worksheet, cell_id, EXECUTE_REQUEST)).fetchone()
            return None if row is None else _request(row)

        return await self._read(op)

    async def worksheet_cells(self, user: str, worksheet: str) -> set[str]:
        return await self._read(lambda conn: {r[0] for r in conn.execute(
            "SELECT DISTINCT cell_id FROM requests WHERE user = ? AND worksheet = ? AND "
            "msg_type = ?", (user, worksheet, EXECUTE_REQUEST))})

    async def requests(self, status: str, *, device: DeviceFilter = ANY,
                       limit: int | None = None) -> list[Request]:
        check_limit(limit)
        sql = f"SELECT {_REQ_COLS} FROM requests WHERE status = ?"
        args: list[Any] = [status]
        if device is None:
            sql += " AND device IS NULL"
        elif device is not ANY:
            sql += " AND device = ?"
            args.append(device)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return await self._read(lambda conn: [_request(r) for r in conn.execute(sql, args)])

    async def unfinished_requests(self, session: str) -> list[Request]:
        return await self._read(lambda conn: [_request(r) for r in conn.execute(
            f"SELECT {_REQ_COLS} FROM requests WHERE session = ? AND status IN (?, ?) "
            "ORDER BY id", (session, NEEDS_WORK, WORKING))])

    async def interact_runs(self, session: str, interact_id: str, *, after: str,
                            before: str | None = None, limit: int = 32) -> list[Request]:
        check_limit(limit)
        sql = (f"SELECT {_REQ_COLS} FROM requests WHERE interact_id = ? AND session = ? AND "
               "msg_type = ? AND id > (SELECT id FROM requests WHERE msg_id = ?)")
        args: list[Any] = [interact_id, session, INTERACT_REQUEST, after]
        if before is not None:
            sql += " AND id < (SELECT id FROM requests WHERE msg_id = ?)"
            args.append(before)
        args.append(limit)
        return await self._read(lambda conn: [_request(r) for r in conn.execute(
            sql + " ORDER BY id DESC LIMIT ?", args)])

    async def supersede_pending(self, session: str, interact_id: str, state: int) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT id, msg_id FROM requests WHERE session = ? AND interact_id = ? AND "
                "msg_type = ? AND status = ? AND state < ? ORDER BY id",
                (session, interact_id, INTERACT_REQUEST, NEEDS_WORK, state)).fetchall()
            now = time.time()
            conn.executemany("UPDATE requests SET status = ?, finished = ? WHERE id = ?",
                             [(SUPERSEDED, now, row_id) for row_id, _ in rows])
            return [msg_id for _, msg_id in rows]

        return await self._write(op)

    # -- messages ---------------------------------------------------------------------------

    async def append_messages(self, items: Sequence[tuple[str, Message]]) -> list[int]:
        if not items:
            return []
        return await self._write(_append_op(items))

    async def append_and_update(self, items: Sequence[tuple[str, Message]],
                                updates: Sequence[StatusUpdate], receipts: Receipts | None = None,
                                ) -> tuple[list[int], list[Progress | None]]:
        append = _append_op(items) if items else None
        put_receipts = _receipts_op(receipts) if receipts else None

        def op(conn: sqlite3.Connection) -> tuple[list[int], list[Progress | None]]:
            seqs = append(conn) if append is not None else []
            updated: list[Progress | None] = []
            for msg_id, status, error in updates:
                try:
                    updated.append(_progress_row(conn, msg_id, status, error))
                except (InvalidTransition, UnknownRequest):
                    updated.append(None)
            if put_receipts is not None:
                put_receipts(conn)
            return seqs, updated

        return await self._write(op)

    async def messages(self, session: str, *, since: int = 0, parent: str | None = None,
                       limit: int | None = None) -> list[tuple[int, Message]]:
        check_limit(limit)
        sql = "SELECT seq, data FROM messages WHERE session = ? AND seq > ?"
        args: list[Any] = [session, since]
        if parent is not None:
            sql += " AND parent = ?"
            args.append(parent)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return await self._read(
            lambda conn: [(seq, unpack(data)) for seq, data in conn.execute(sql, args)])

    async def last_seq(self, session: str) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT last FROM seqs WHERE session = ?", (session,)).fetchone()
            return 0 if row is None else int(row[0])

        return await self._read(op)

    async def seq_floor(self) -> int:
        return self._floor

    async def user_bytes(self, user: str) -> int | None:
        return await self._read(lambda conn: int(
            conn.execute(_user_bytes.SQLITE, {"user": user}).fetchone()[0]))

    # -- sessions ---------------------------------------------------------------------------

    async def put_session(self, rec: SessionRecord) -> None:
        await self._write(_put_session_op(rec))

    async def add_session_request(self, rec: SessionRecord, req: Request,
                                  stamp: Stamp | None = None) -> Request:
        put_session = _put_session_op(rec)
        add_request = self._add_request_op(req, stamp)

        def op(conn: sqlite3.Connection) -> Request:
            put_session(conn)
            return add_request(conn)

        return await self._write(op)

    async def get_session(self, session: str) -> SessionRecord | None:
        def op(conn: sqlite3.Connection) -> SessionRecord | None:
            row = conn.execute(f"SELECT {_SESSION_COLS} FROM sessions WHERE session = ?",
                               (session,)).fetchone()
            return None if row is None else SessionRecord(*row)

        return await self._read(op)

    async def find_session(self, user: str, worksheet: str) -> SessionRecord | None:
        def op(conn: sqlite3.Connection) -> SessionRecord | None:
            row = conn.execute(
                f"SELECT {_SESSION_COLS} FROM sessions WHERE user = ? AND worksheet = ? AND "
                "state = ? ORDER BY created DESC, rowid DESC LIMIT 1",
                (user, worksheet, OPEN)).fetchone()
            return None if row is None else SessionRecord(*row)

        return await self._read(op)

    async def sessions(self, state: str | None = None, *,
                       newest: int | None = None) -> list[SessionRecord]:
        check_limit(newest)
        sql = f"SELECT {_SESSION_COLS}, rowid FROM sessions"
        args: tuple[Any, ...] = ()
        if state is not None:
            sql, args = sql + " WHERE state = ?", (state,)
        if newest is not None:
            sql, args = f"{sql} ORDER BY created DESC, rowid DESC LIMIT ?", (*args, newest)
        sql = f"SELECT {_SESSION_COLS} FROM ({sql}) ORDER BY created, rowid"
        return await self._read(lambda conn: [SessionRecord(*r) for r in conn.execute(sql, args)])

    # -- retention (._sqlite_retention) -----------------------------------------------------

    async def finished_sessions(self, before: float, *, limit: int) -> list[tuple[str, int]]:
        return await self._read(lambda conn: _retention.finished_sessions(conn, before, limit))

    async def session_requests(self, session: str) -> list[Request]:
        return await self._read(lambda conn: [_request(r) for r in conn.execute(
            f"SELECT {_REQ_COLS} FROM requests WHERE session = ? ORDER BY id", (session,))])

    async def apply_compaction(self, plan: SessionPlan) -> CompactionStats:
        stats = CompactionStats()
        for op in _retention.plan_ops(plan, pack, time.time()):
            stats.add(await self._write(op))
        return stats

    async def reclaim_space(self) -> str | None:
        if self._writer is None:
            raise StoreClosed(f"store {self.path} is closed")
        try:
            return await asyncio.to_thread(_retention.reclaim, self.path, BUSY_TIMEOUT)
        except sqlite3.Error as e:
            raise StoreError(f"database error reclaiming space in {self.path}: {e}") from e

    async def disk_usage(self) -> int | None:
        return _retention.disk_usage(self.path)

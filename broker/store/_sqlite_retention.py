"""Retention on the SQLite store: finding finished sessions, applying compaction plans, and
giving the freed space back to the disk.

Space. Rows deleted by compaction leave free pages in the file, which SQLite reuses for new
rows, so the file stops growing once compaction keeps up; to make it *shrink*, the store
uses ``auto_vacuum=INCREMENTAL``: :func:`reclaim` moves free pages to the end of the file and
truncates it (``PRAGMA incremental_vacuum``, in chunks of :data:`VACUUM_CHUNK` pages, each
its own short write transaction so live writes interleave), then checkpoints the WAL with
``TRUNCATE`` so the ``-wal`` file shrinks too (``journal_size_limit`` bounds what automatic
checkpoints leave behind). The broker runs it after every compaction pass that removed
something.

``auto_vacuum`` can only be chosen before a database has tables, or by a full ``VACUUM``
(which works in WAL mode, but rewrites the whole file and blocks writers meanwhile). So a new
store is created INCREMENTAL; an older store is converted when it is opened if it is at most
:data:`CONVERT_LIMIT` bytes, and otherwise keeps ``NONE`` (compaction still stops its
growth) until an operator converts it with the broker stopped::

    sqlite3 cellbus.db 'PRAGMA auto_vacuum=INCREMENTAL; VACUUM;'
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from .compaction import CompactionStats, SessionPlan
from .records import FINAL, NEEDS_WORK, WORKING

#: Stores up to this size are converted to auto_vacuum=INCREMENTAL when opened.
CONVERT_LIMIT: Final = 64 * 1024 * 1024
#: Free pages moved and truncated per transaction by :func:`reclaim`.
VACUUM_CHUNK: Final = 1024
#: Free pages left in the file for new rows (no point truncating what is refilled at once).
KEEP_FREE_PAGES: Final = 256
#: What an automatic WAL checkpoint leaves of the -wal file at most.
JOURNAL_SIZE_LIMIT: Final = 64 * 1024 * 1024
#: Message seqs deleted or rewritten per write transaction when applying a plan.
PLAN_CHUNK: Final = 2000
AUTO_VACUUM_MODES: Final = {0: "none", 1: "full", 2: "incremental"}

_FINISHED: Final = f"""
    SELECT s.session, q.last FROM sessions s
    JOIN seqs q ON q.session = s.session
    LEFT JOIN compacted c ON c.session = s.session
    WHERE s.last_activity < :before AND q.last > COALESCE(c.through, 0)
      AND NOT EXISTS (SELECT 1 FROM requests r WHERE r.session = s.session
                      AND r.status IN ('{NEEDS_WORK}', '{WORKING}'))
      AND COALESCE((SELECT m.created FROM messages m
                    WHERE m.session = s.session AND m.seq = q.last), 0) < :before
    ORDER BY s.last_activity, s.session LIMIT :limit"""
_FINAL_LIST: Final = ", ".join(f"'{status}'" for status in sorted(FINAL))

Op = Callable[[sqlite3.Connection], Any]


def prepare(conn: sqlite3.Connection) -> None:
    """On a freshly opened write connection, before WAL mode is set: a new file becomes
    auto_vacuum=INCREMENTAL (this has no effect on a file that has tables)."""
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")


def finish_open(conn: sqlite3.Connection, path: Path) -> None:
    """After the schema is in place: bound the WAL, and convert a small older store."""
    conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
    if auto_vacuum(conn) != "incremental" and path.stat().st_size <= CONVERT_LIMIT:
        try:
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("VACUUM")
        except sqlite3.OperationalError:  # busy (another broker): convert another time
            pass


def auto_vacuum(conn: sqlite3.Connection) -> str:
    """The file's auto_vacuum mode: none, full or incremental."""
    return AUTO_VACUUM_MODES.get(conn.execute("PRAGMA auto_vacuum").fetchone()[0], "?")


def finished_sessions(conn: sqlite3.Connection, before: float, limit: int
                      ) -> list[tuple[str, int]]:
    return [(s, int(last)) for s, last in conn.execute(
        _FINISHED, {"before": before, "limit": limit})]


def plan_ops(plan: SessionPlan, pack: Callable[[Any], bytes], now: float) -> list[Op]:
    """The plan as write operations, each its own group-commit job and each safe to repeat;
    each returns the :class:`CompactionStats` of what it did."""
    session, through = plan.session, plan.through

    def prune(conn: sqlite3.Connection) -> CompactionStats:
        stats = CompactionStats()
        ids = _json_list(plan.drop_requests)
        where = f"msg_id IN (SELECT value FROM json_each(?)) AND status IN ({_FINAL_LIST})"
        count, size = conn.execute(f"SELECT COUNT(*), COALESCE(SUM(length(message)), 0) "
                                   f"FROM requests WHERE {where}", (ids,)).fetchone()
        conn.execute(f"DELETE FROM requests WHERE {where}", (ids,))
        stats.requests_removed, stats.bytes_freed = count, size
        orphans = ("session = ? AND seq <= ? AND (parent IS NULL OR parent NOT IN "
                   "(SELECT msg_id FROM requests WHERE session = ?))")
        args = (session, through, session)
        count, size = conn.execute(f"SELECT COUNT(*), COALESCE(SUM(length(data)), 0) "
                                   f"FROM messages WHERE {orphans}", args).fetchone()
        conn.execute(f"DELETE FROM messages WHERE {orphans}", args)
        stats.messages_removed, stats.bytes_freed = count, stats.bytes_freed + size
        return stats

    def delete(seqs: list[int]) -> Op:
        def op(conn: sqlite3.Connection) -> CompactionStats:
            where = "session = ? AND seq <= ? AND seq IN (SELECT value FROM json_each(?))"
            args = (session, through, _json_list(seqs))
            count, size = conn.execute(f"SELECT COUNT(*), COALESCE(SUM(length(data)), 0) "
                                       f"FROM messages WHERE {where}", args).fetchone()
            conn.execute(f"DELETE FROM messages WHERE {where}", args)
            return CompactionStats(messages_removed=count, bytes_freed=size)
        return op

    def rewrite(items: list[tuple[int, bytes]]) -> Op:
        def op(conn: sqlite3.Connection) -> CompactionStats:
            stats = CompactionStats()
            for seq, data in items:
                row = conn.execute("SELECT length(data) FROM messages WHERE session = ? AND "
                                   "seq = ?", (session, seq)).fetchone()
                if row is not None and seq <= through:
                    conn.execute("UPDATE messages SET data = ? WHERE session = ? AND seq = ?",
                                 (data, session, seq))
                    stats.messages_rewritten += 1
                    stats.bytes_freed += row[0] - len(data)
            return stats
        return op

    def mark(conn: sqlite3.Connection) -> CompactionStats:
        conn.execute("INSERT INTO compacted (session, through, at) VALUES (?, ?, ?) "
                     "ON CONFLICT (session) DO UPDATE SET through = MAX(through, "
                     "excluded.through), at = excluded.at", (session, through, now))
        return CompactionStats(sessions=1)

    packed = [(seq, pack(msg)) for seq, msg in sorted(plan.rewrite.items())]
    ops: list[Op] = [prune]
    ops += [delete(plan.delete[i:i + PLAN_CHUNK]) for i in range(0, len(plan.delete),
                                                                  PLAN_CHUNK)]
    ops += [rewrite(packed[i:i + PLAN_CHUNK]) for i in range(0, len(packed), PLAN_CHUNK)]
    return ops + [mark]


def _json_list(items: list[Any]) -> str:
    return json.dumps(items)


def disk_usage(path: Path) -> int:
    """Bytes of the database file and its -wal and -shm files."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        try:
            total += os.stat(f"{path}{suffix}").st_size
        except FileNotFoundError:
            pass
    return total


def reclaim(path: Path, busy_timeout: float) -> str | None:
    """Truncate free pages off the file (if it is INCREMENTAL) and checkpoint the WAL with
    TRUNCATE, on a connection of its own; blocking, run it in a thread. A log line, or None
    if there was nothing to give back."""
    before = disk_usage(path)
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        mode = auto_vacuum(conn)
        freed = 0
        if mode == "incremental":
            for _ in range(1_000_000 // VACUUM_CHUNK):  # bounded, whatever writers do
                free = conn.execute("PRAGMA freelist_count").fetchone()[0]
                if free <= KEEP_FREE_PAGES:
                    break
                step = min(VACUUM_CHUNK, free - KEEP_FREE_PAGES)
                # executescript steps the pragma to the end; execute() would free one page
                conn.executescript(f"PRAGMA incremental_vacuum({step});")
                freed += step
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    after = disk_usage(path)
    if before == after and not freed:
        return None
    return (f"SQLite file and WAL {before:,} -> {after:,} bytes ({freed} free pages truncated, "
            f"{free} left for reuse, {free * page:,} bytes; auto_vacuum {mode}"
            f"{'; WAL checkpoint busy, retried next pass' if busy else ''})")

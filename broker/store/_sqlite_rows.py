"""Rows of the SQLite store: row decoding, and the writes that several store
methods share (so that :class:`~broker.store.sqlite.SQLiteStore` can also run two of them as
one operation of its writer: one transaction, one commit, one wake-up of the event loop)."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import Any, Final

from . import _sqlite_restore
from ._rows import header_facts, pack, read_input, unpack
from .base import Message
from .errors import UnknownRequest
from .records import (FINAL, NEEDS_WORK, WORKING, DeviceRecord, Progress, Request,
                      SessionRecord, check_transition)

log = logging.getLogger("cellbus.broker")

_REQ_NAMES: Final = tuple(f.name for f in fields(Request))
_REQ_COLS: Final = ", ".join(_REQ_NAMES)
_PROGRESS_COLS: Final = ", ".join(f.name for f in fields(Progress))
_REQ_SLOTS: Final = ", ".join("?" * len(fields(Request)))
_SESSION_COLS: Final = ", ".join(f.name for f in fields(SessionRecord))
_DEVICE_COLS: Final = ", ".join(f.name for f in fields(DeviceRecord))


def _request(row: Sequence[Any]) -> Request:
    values = list(row)
    values[7] = unpack(values[7])  # message
    values[6] = read_input(values[5], values[6], values[7])  # msg_type, input, message
    return Request(*values)


def _device(row: Sequence[Any]) -> DeviceRecord:
    return DeviceRecord(row[0], row[1], row[2], row[3], unpack(row[4]))


def _update_row(conn: sqlite3.Connection, msg_id: str, status: str, device: str | None,
                error: str | None) -> Request:
    """``update_request`` inside a write transaction."""
    return _request(_move(conn, msg_id, status, device, error, _REQ_COLS))


def _progress_row(conn: sqlite3.Connection, msg_id: str, status: str,
                  error: str | None) -> Progress:
    """An update of ``append_and_update`` inside a write transaction."""
    return Progress(*_move(conn, msg_id, status, None, error, _PROGRESS_COLS))


def _move(conn: sqlite3.Connection, msg_id: str, status: str, device: str | None,
          error: str | None, returning: str) -> Sequence[Any]:
    """Move request ``msg_id`` to ``status``; its ``returning`` columns after."""
    row = conn.execute("SELECT status, device, started, error FROM requests "
                       "WHERE msg_id = ?", (msg_id,)).fetchone()
    if row is None:
        raise UnknownRequest(msg_id)
    old, old_device, started, old_error = row
    check_transition(msg_id, old, status)
    now = time.time()
    if status == WORKING:
        started = now
    elif status == NEEDS_WORK:  # hand-back: unplaced unless a device is named
        started, old_device = None, None
    moved: Sequence[Any] = conn.execute(
        f"UPDATE requests SET status = ?, device = ?, started = ?, finished = ?, "
        f"error = ? WHERE msg_id = ? RETURNING {returning}",
        (status, device if device is not None else old_device, started,
         now if status in FINAL else None, error if error is not None else old_error,
         msg_id)).fetchone()
    return moved


def _append_op(items: Sequence[tuple[str, Message]]) -> Callable[[sqlite3.Connection],
                                                                 list[int]]:
    """The write of ``append_messages(items)``; messages are packed here, on the caller."""
    now = time.time()
    prepared = [(session, *header_facts(msg), now, pack(msg)) for session, msg in items]
    counts: dict[str, int] = {}
    for session, *_ in prepared:
        counts[session] = counts.get(session, 0) + 1

    def op(conn: sqlite3.Connection) -> list[int]:
        nxt: dict[str, int] = {}
        base = _sqlite_restore.floor(conn)  # 0, or past a restored copy's backup point
        for session, n in counts.items():
            last = conn.execute(
                "INSERT INTO seqs (session, last) VALUES (?, ? + ?) ON CONFLICT (session) "
                "DO UPDATE SET last = last + ? RETURNING last",
                (session, base, n, n)).fetchone()[0]
            last = _after_stored(conn, session, last, n)
            nxt[session] = last - n + 1
        seqs, rows = [], []
        for session, parent, msg_type, created, data in prepared:
            seq = nxt[session]
            nxt[session] = seq + 1
            seqs.append(seq)
            rows.append((session, seq, parent, msg_type, created, data))
        conn.executemany("INSERT INTO messages (session, seq, parent, msg_type, created, "
                         "data) VALUES (?, ?, ?, ?, ?, ?)", rows)
        return seqs

    return op


def _after_stored(conn: sqlite3.Connection, session: str, last: int, n: int) -> int:
    """``last``, the seqs counter just moved on by ``n``, or higher if the session already
    holds a message at or past its first new seq: the file was changed by another process
    (a restored copy, a hand edit) while the counter was not. Without this every write
    carrying the session's output failed on the duplicate seq, from then on; with it, the
    next seqs follow the stored ones (a primary-key lookup per session and batch)."""
    top = conn.execute("SELECT MAX(seq) FROM messages WHERE session = ?",
                       (session,)).fetchone()[0]
    if top is None or top <= last - n:
        return last
    log.warning("broker store: session %s holds messages up to seq %d, past its counter "
                "(%d): the file was changed by another process; its next seqs follow them",
                session, top, last - n)
    conn.execute("UPDATE seqs SET last = ? WHERE session = ?", (top + n, session))
    return top + n


def _receipts_op(receipts: Mapping[str, tuple[str, int]]) -> Callable[[sqlite3.Connection],
                                                                       None]:
    """The write of ``put_receipts(receipts)``."""
    rows = [(device, epoch, stored) for device, (epoch, stored) in receipts.items()]

    def op(conn: sqlite3.Connection) -> None:
        conn.executemany("INSERT INTO receipts (device, epoch, stored) VALUES (?, ?, ?) "
                         "ON CONFLICT (device) DO UPDATE SET epoch = excluded.epoch, "
                         "stored = excluded.stored", rows)

    return op


def _put_session_op(rec: SessionRecord) -> Callable[[sqlite3.Connection], None]:
    """The write of ``put_session(rec)``."""
    values = (rec.session, rec.user, rec.worksheet, rec.device, rec.state, rec.created,
              rec.last_activity)  # as _SESSION_COLS; astuple() would deep-copy

    def op(conn: sqlite3.Connection) -> None:
        conn.execute(
            f"INSERT INTO sessions ({_SESSION_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (session) DO UPDATE SET user = excluded.user, "
            "worksheet = excluded.worksheet, device = excluded.device, "
            "state = excluded.state, created = excluded.created, "
            "last_activity = excluded.last_activity", values)

    return op

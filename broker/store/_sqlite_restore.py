"""A restored or copied SQLite store numbers each session's new output past every seq the
store it was copied from may have handed out since the copy (:func:`check_copy`).

A backup (README: Backups) holds each session's output up to the backup point; the store it
was taken from went on, and its clients (a WebSocket's ``since``, a ``/update?since=``, a
page's cellbus.js, a Jupyter channels socket open across it) saw seqs past that point.
Numbered again from the backup's seq, a restored store's new output took seqs those
clients already had: they skipped it as seen, and lost it for good. So the file records
where it lives (device and inode): a broker that opens it elsewhere (a backup copy put in
place, a copy on another machine) starts every session's seqs anew at a *floor* above
anything the lost store could have numbered, and every client's position, whichever store
it came from, is behind the new output. A copy that is not a restore (the file moved to
another disk) costs only a jump in its seqs: clients take it as a gap and fill it from the
store.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Final

log = logging.getLogger("cellbus.broker")

#: The floor of a copy opened at time T (seconds since the epoch) is T times this: above
#: every seq the store it came from numbered, unless that store took more than a million
#: messages of one session a second since its own floor. It keeps seqs below 2**53, exact
#: in JavaScript numbers (cellbus.js), until the year 2242.
PER_SECOND: Final = 2**20
#: The file's identity (text) and its floor (an integer), if it has one.
SCHEMA: Final = "CREATE TABLE IF NOT EXISTS incarnation (key TEXT PRIMARY KEY, value NOT NULL)"


def where(path: Path) -> str:
    """The file's identity on this machine: its device and inode."""
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def check_copy(conn: sqlite3.Connection, path: Path) -> None:
    """Record where the file is; if it was somewhere else before, raise every session's seq
    counter, and the start of sessions yet unknown, to a new floor (:func:`floor`)."""
    here = where(path)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(SCHEMA)
        row = conn.execute("SELECT value FROM incarnation WHERE key = 'file'").fetchone()
        if row is not None and row[0] != here:
            top = conn.execute("SELECT MAX(last) FROM seqs").fetchone()[0] or 0
            new = max(int(time.time()) * PER_SECOND, top + 1, floor(conn) + 1)
            conn.execute("UPDATE seqs SET last = MAX(last, ?)", (new,))
            conn.execute("INSERT INTO incarnation (key, value) VALUES ('floor', ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (new,))
            log.warning("broker store: %s was copied or restored (it was another file when "
                        "last opened): new output of every session is numbered from seq %d, "
                        "past what clients of the store it came from have seen", path, new + 1)
        conn.execute("INSERT INTO incarnation (key, value) VALUES ('file', ?) "
                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (here,))
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def floor(conn: sqlite3.Connection) -> int:
    """The seq after which a session new to this file starts: 0, or a copy's floor."""
    row = conn.execute("SELECT value FROM incarnation WHERE key = 'floor'").fetchone()
    return int(row[0]) if row is not None else 0

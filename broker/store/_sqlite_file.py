"""The SQLite file behind :class:`~broker.store.sqlite.SQLiteStore`: URL, pragmas, schema.

Durability: ``journal_mode=WAL`` with ``synchronous=NORMAL``. A commit is in the WAL file
(written, though not fsynced) before the call returns, so it survives the broker process
crashing or being killed (``kill -9``) at any moment, and that is what we promise: persisted
before acknowledged, before published. NORMAL gives up only the fsync per commit, so an
operating-system crash or power cut may lose the last commits (the file stays consistent);
FULL would fsync each commit and cost an order of magnitude in throughput.
"""

from __future__ import annotations

import os
import resource
import sqlite3
from pathlib import Path
from typing import Final
from urllib.parse import quote, unquote, urlsplit

from . import _sqlite_restore, _sqlite_retention
from .errors import StoreError, UnknownStore

SCHEMA_VERSION: Final = 1
#: Seconds a write waits for another process's write transaction before it fails.
BUSY_TIMEOUT: Final = 5.0
#: The most SQLite writes to a file at once: its largest page and a WAL frame's header.
LARGEST_WRITE: Final = 65536 + 24

# Tables mirror the channels: requests (shell), messages (iopub), and the routing tables.
# seqs holds each session's last seq, so seqs never go back even if messages are pruned.
SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS requests (
        id INTEGER PRIMARY KEY, msg_id TEXT NOT NULL UNIQUE, session TEXT NOT NULL,
        user TEXT NOT NULL, worksheet TEXT NOT NULL, cell_id TEXT NOT NULL,
        msg_type TEXT NOT NULL, input TEXT NOT NULL, message BLOB NOT NULL,
        status TEXT NOT NULL, device TEXT, created REAL NOT NULL, started REAL,
        finished REAL, error TEXT, interact_id TEXT, state INTEGER)""",
    "CREATE INDEX IF NOT EXISTS requests_status ON requests (status, device, id)",
    # A cell's latest run (its msg_type too: a cell's interact runs are skipped in the index,
    # not read row by row), and a worksheet's cells.
    "CREATE INDEX IF NOT EXISTS requests_cell_kind ON requests "
    "(user, worksheet, cell_id, msg_type, id)",
    # A session's requests by status: its unfinished ones, pending interacts.
    "CREATE INDEX IF NOT EXISTS requests_session ON requests (session, status, id)",
    # An interact's runs, newest first (a cell's view folded from the store); only
    # interact_requests have an interact_id, so execute_requests cost this index nothing.
    "CREATE INDEX IF NOT EXISTS requests_runs ON requests (interact_id, id) "
    "WHERE interact_id IS NOT NULL",
    # What these two replaced: (user, worksheet, cell_id, id), (session, interact_id, status).
    "DROP INDEX IF EXISTS requests_cell",
    "DROP INDEX IF EXISTS requests_interact",
    """CREATE TABLE IF NOT EXISTS messages (
        session TEXT NOT NULL, seq INTEGER NOT NULL, parent TEXT, msg_type TEXT,
        created REAL NOT NULL, data BLOB NOT NULL, PRIMARY KEY (session, seq))""",
    "CREATE INDEX IF NOT EXISTS messages_parent ON messages (parent, seq)",
    "CREATE TABLE IF NOT EXISTS seqs (session TEXT PRIMARY KEY, last INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS sessions (
        session TEXT PRIMARY KEY, user TEXT NOT NULL, worksheet TEXT NOT NULL, device TEXT,
        state TEXT NOT NULL, created REAL NOT NULL, last_activity REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS sessions_worksheet ON sessions (user, worksheet, state)",
    # the open sessions (a broker's start, Jupyter's kernel list), however many have closed
    "CREATE INDEX IF NOT EXISTS sessions_state ON sessions (state, created)",
    """CREATE TABLE IF NOT EXISTS devices (
        device TEXT PRIMARY KEY, capacity INTEGER NOT NULL, load INTEGER NOT NULL,
        last_heartbeat REAL NOT NULL, info BLOB NOT NULL)""",
    # users of gateways with --auth token: the SHA-256 of each token, never the token
    """CREATE TABLE IF NOT EXISTS users (
        name TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, created REAL NOT NULL)""",
    # retention (._sqlite_retention): each compacted session and the seq it was compacted
    # through; sessions by last activity, to find finished ones
    """CREATE TABLE IF NOT EXISTS compacted (
        session TEXT PRIMARY KEY, through INTEGER NOT NULL, at REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS sessions_activity ON sessions (last_activity)",
    # each device's outbox: the last record stored of its current epoch (broker/receipts.py)
    """CREATE TABLE IF NOT EXISTS receipts (
        device TEXT PRIMARY KEY, epoch TEXT NOT NULL, stored INTEGER NOT NULL)""",
    # what each Jupyter channels client of a worksheet was delivered last (broker/kernels.py)
    """CREATE TABLE IF NOT EXISTS deliveries (
        user TEXT NOT NULL, worksheet TEXT NOT NULL, client TEXT NOT NULL,
        session TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (user, worksheet, client))""",
    # code shared by link (broker/permalinks.py); interact: its JSON, or NULL
    """CREATE TABLE IF NOT EXISTS permalinks (
        id TEXT PRIMARY KEY, code TEXT NOT NULL, interact TEXT, owner TEXT NOT NULL,
        created REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS permalinks_owner ON permalinks (owner)",
    # each worksheet's cells in order, as its page saved them (broker/layouts.py): JSON
    """CREATE TABLE IF NOT EXISTS layouts (
        user TEXT NOT NULL, worksheet TEXT NOT NULL, cells TEXT NOT NULL,
        updated REAL NOT NULL, PRIMARY KEY (user, worksheet))""",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)

_HINT: Final = "use sqlite:///absolute/path/cellbus.db"


def sqlite_path(url: str) -> Path:
    """The file named by a ``sqlite:///absolute/path.db`` URL; :class:`UnknownStore` if bad."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite":
        raise UnknownStore(f"{url!r} is not a sqlite:// URL; {_HINT}")
    if parts.netloc or parts.query or parts.fragment:
        raise UnknownStore(f"bad SQLite store URL {url!r} (no host, no ?options); {_HINT}")
    if parts.path and not parts.path.startswith("/"):  # sqlite:cellbus.db: not /cellbus.db
        raise UnknownStore(f"SQLite store URL {url!r} has a relative path: a broker started "
                           "elsewhere would use another file; give the absolute one, e.g. "
                           f"{sqlite_url(unquote(parts.path))}")
    path = "/" + unquote(parts.path).lstrip("/")
    if path == "/" or path.endswith("/"):
        raise UnknownStore(f"SQLite store URL {url!r} names no file; {_HINT}")
    if path == "/:memory:":
        raise UnknownStore(f"in-memory SQLite stores are not supported ({url!r}): the store "
                           f"must survive a restart; {_HINT}")
    return Path(path)


def sqlite_url(path: str | os.PathLike[str]) -> str:
    """The ``sqlite:///...`` URL of a file path (made absolute)."""
    return "sqlite://" + quote(str(Path(path).absolute()))


def connect(path: Path) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """Open (creating if needed, mode 0600) the file: a write and a read connection.

    Both are in autocommit mode (we issue BEGIN ourselves) and may be handed to another
    thread, which must then be their only user.
    """
    if not path.parent.is_dir():
        raise StoreError(f"cannot open SQLite store {path}: directory {path.parent} does not "
                         "exist; create it or choose another path")
    opened: list[sqlite3.Connection] = []
    try:
        if not path.exists():  # private: it holds users' code and output (WAL files follow)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        for _ in range(2):
            opened.append(sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None,
                                          check_same_thread=False))
        wconn, rconn = opened
        _sqlite_retention.prepare(wconn)  # a new file: auto_vacuum=INCREMENTAL, before WAL
        mode = wconn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"SQLite store {path} cannot use WAL mode (got {mode}); put it "
                             "on a local filesystem")
        wconn.execute("PRAGMA synchronous=NORMAL")
        _migrate(path, wconn)
        _sqlite_restore.check_copy(wconn, path)  # a backup put in place: seqs go on past it
        _sqlite_retention.finish_open(wconn, path)
        rconn.execute("PRAGMA query_only=ON")
        return wconn, rconn
    except BaseException as e:
        for conn in opened:
            conn.close()
        if isinstance(e, sqlite3.OperationalError) and e.sqlite_errorname == "SQLITE_BUSY":
            raise StoreError(
                f"cannot open SQLite store {path}: {e}: another process kept it locked for "
                f"{BUSY_TIMEOUT:g} s (a long write, a copy or backup of the file); try again, "
                f"and if it stays locked see which process has it open (fuser {path})") from e
        if isinstance(e, (sqlite3.Error, OSError)):
            raise StoreError(f"cannot open SQLite store {path}: {e}"
                             f"{file_limit_note(path)}") from e
        raise


def file_limit_note(path: str | os.PathLike[str]) -> str:
    """What to add to a failed write's message if the store file ``path``, its -wal or its
    -shm has reached this process's file size limit (RLIMIT_FSIZE: ``ulimit -f``, systemd's
    LimitFSIZE=), else "". A write past the limit fails with EFBIG, which SQLite reports as
    a bare "disk I/O error", so an operator looked for a failing disk. The kernel writes up
    to the limit before it refuses, so a file within one page write of it has reached it."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit == resource.RLIM_INFINITY:
        return ""
    real = Path(path).resolve()  # SQLite keeps the -wal and -shm beside the file
    for name in (real, real.with_name(real.name + "-wal"), real.with_name(real.name + "-shm")):
        try:
            size = os.stat(name).st_size
        except OSError:
            continue
        if size > limit - LARGEST_WRITE:
            return (f"; {name} has reached this broker's file size limit ({limit} bytes: "
                    "RLIMIT_FSIZE, ulimit -f) and cannot grow: start the broker with a higher "
                    "one (ulimit -f unlimited; LimitFSIZE=infinity in a systemd unit)")
    return ""


def _migrate(path: Path, conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"SQLite store {path} has schema {version}, newer than this "
                             f"cellbus's {SCHEMA_VERSION}: upgrade cellbus")
        for statement in SCHEMA:
            conn.execute(statement)
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

"""A writer thread that owns one SQLite connection and group-commits queued operations.

The ZeroMQ Guide (chapter 4, Titanic) advises syncing "after every message or every N ms"
rather than per request. We do the batch form: the thread takes everything queued (up to
``max_batch`` operations), runs it in ONE ``BEGIN IMMEDIATE`` transaction with a SAVEPOINT
around each operation (none when it is alone: the transaction is its savepoint), commits
once, then settles each caller's future on its event loop. An operation that raises is
rolled back to its savepoint and fails only its own caller.
The event loop never touches the connection, so a slow disk never stalls it.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from ._sqlite_file import file_limit_note
from .errors import StoreClosed, StoreError, StoreFull, StoreUnwritable

#: Operations per transaction: big enough that a burst is one commit, small enough that one
#: commit stays short (readers never wait in WAL mode, but other writers do).
MAX_BATCH: Final = 512
#: Queued operations before :class:`StoreFull`: the disk is not keeping up.
MAX_PENDING: Final = 10_000

Op = Callable[[sqlite3.Connection], Any]
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


@dataclass(frozen=True)
class WriterStats:
    """Counters of a writer, so a benchmark can report how well writes are batched."""

    commits: int  # transactions committed
    operations: int  # operations in those transactions (succeeded or rolled back alone)
    failed: int  # callers that got an exception
    largest_batch: int  # most operations in one committed transaction


class _Job:
    __slots__ = ("op", "future", "loop")

    def __init__(self, op: Op, future: asyncio.Future[Any],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.op, self.future, self.loop = op, future, loop


def _settle(outcomes: list[_Outcome]) -> None:
    for future, result, exc in outcomes:
        if future.done():  # the caller was cancelled; the write happened regardless
            continue
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)


#: SQLite's primary result codes that mean the file cannot take writes now (SQLITE_READONLY,
#: SQLITE_IOERR, SQLITE_FULL), as opposed to a write that is wrong.
_UNWRITABLE = frozenset({8, 10, 13})


def _store_error(message: str, cause: BaseException | None, path: str) -> StoreError:
    """:class:`StoreUnwritable` if ``cause`` says the disk cannot take writes (naming the
    process's file size limit if the store's file ``path`` reached it), else
    :class:`StoreError`."""
    code = getattr(cause, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _UNWRITABLE:
        return StoreUnwritable(message + file_limit_note(path))
    return StoreError(message)


def _as_store_error(exc: Exception, path: str) -> Exception:
    if isinstance(exc, sqlite3.Error):
        return _store_error(f"database error: {exc}", exc, path)
    return exc


class GroupCommitWriter:
    """Runs :data:`Op` callables on ``conn`` in its own thread, many per transaction."""

    def __init__(self, conn: sqlite3.Connection, *, name: str, max_batch: int = MAX_BATCH,
                 max_pending: int = MAX_PENDING) -> None:
        if max_batch < 1 or max_pending < 1:
            raise ValueError("max_batch and max_pending must be at least 1")
        self.name = name
        self.max_batch = max_batch
        self.max_pending = max_pending
        self._conn = conn
        self._queue: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._commits = self._operations = self._failed = self._largest = 0
        self._thread = threading.Thread(target=self._run, name=f"cellbus-store-writer {name}",
                                        daemon=True)
        self._thread.start()

    @property
    def stats(self) -> WriterStats:
        """A snapshot of the counters."""
        return WriterStats(self._commits, self._operations, self._failed, self._largest)

    def submit(self, op: Op) -> asyncio.Future[Any]:
        """Queue ``op``; the future settles after the transaction that ran it commits."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._cond:
            if self._closing:
                raise StoreClosed(f"store {self.name} is closed")
            if len(self._queue) >= self.max_pending:
                raise StoreFull(f"store {self.name} has {len(self._queue)} writes queued "
                                f"(max_pending={self.max_pending}); the disk is not keeping "
                                "up: retry later or raise max_pending")
            self._queue.append(_Job(op, future, loop))
            self._cond.notify()
        return future

    def stop(self) -> None:
        """Refuse new writes; the thread commits everything queued, closes the connection
        and exits. Call :meth:`join` (in a thread) to wait for that."""
        with self._cond:
            self._closing = True
            self._cond.notify()

    def join(self) -> None:
        """Block until the thread has exited (after :meth:`stop`)."""
        self._thread.join()

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closing:
                        self._cond.wait()
                    take = min(len(self._queue), self.max_batch)
                    batch = [self._queue.popleft() for _ in range(take)]
                    done = self._closing and not self._queue
                if batch:
                    self._commit_or_fail(batch)
                if done:
                    return
        finally:
            self._conn.close()

    def _commit_or_fail(self, batch: list[_Job]) -> None:
        try:
            self._commit(batch)
        except Exception as e:  # noqa: BLE001 - never leave a caller waiting forever
            try:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._fail_all(batch, f"store {self.name} failed a write transaction: {e}", e)

    def _commit(self, batch: list[_Job]) -> None:
        conn = self._conn
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            self._fail_all(batch, f"cannot start a write transaction on store {self.name}: {e}",
                           e)
            return
        alone = len(batch) == 1  # then its savepoint would be the transaction itself
        for job in batch:
            if not alone:
                conn.execute("SAVEPOINT op")
            try:
                result = job.op(conn)
            except Exception as e:  # noqa: BLE001 - fails only this caller
                if alone:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    self._deliver([(job, None, _as_store_error(e, self.name))])
                    return
                if not self._rollback_op(conn):
                    # SQLite rolled back the whole transaction (disk full, I/O error, ...).
                    self._fail_all(batch, f"store {self.name} aborted a write transaction: {e}",
                                   e)
                    return
                outcomes.append((job, None, _as_store_error(e, self.name)))
            else:
                if not alone:
                    conn.execute("RELEASE op")
                outcomes.append((job, result, None))
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._fail_all(batch, f"store {self.name} could not commit: {e}", e)
            return
        self._commits += 1
        self._operations += len(batch)
        self._largest = max(self._largest, len(batch))
        self._deliver(outcomes)

    @staticmethod
    def _rollback_op(conn: sqlite3.Connection) -> bool:
        """Undo the failed operation only; False if the transaction itself is gone."""
        if not conn.in_transaction:
            return False
        try:
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return False
        return True

    def _fail_all(self, batch: list[_Job], message: str, cause: BaseException) -> None:
        self._deliver([(job, None, _store_error(message, cause, self.name)) for job in batch])

    def _deliver(self, outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for job, result, exc in outcomes:
            self._failed += exc is not None
            by_loop.setdefault(job.loop, []).append((job.future, result, exc))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, items)
            except RuntimeError:  # that loop is closed; nobody is waiting any more
                pass

"""One broker per SQLite store: a broker holds its file for as long as it runs, and stops
if the file is taken from under it.

A store has one broker (:mod:`broker.sessions`), and nothing kept two off one SQLite file:
README's way to run a second ``up`` (a state directory of its own) gave both the default
store. Two brokers on one file each take the other's running cells for orphans of a broker
that died, and end them with ``DeviceLost``; each opens sessions for worksheets the other
serves and hands out requests the other stored. So a broker takes an exclusive ``flock`` on
``FILE.broker-lock`` beside the file before it reads anything (the file a symbolic link
given as ``--store`` points to), and a second broker on the same file stops at start with
one line that names the file, the pid holding it and ``--store``. The lock goes with the
process that holds it (``kill -9`` included), so a crashed broker never leaves a stale one
behind. A hard link is another name of the file in another folder, whose lock file is
beside that name: two brokers ran on one file that way, each with a ``-wal`` and ``-shm``
beside its own name, so neither saw the other's log (two logs corrupt the file). So the
broker also takes a ``flock`` on the file itself, which every name of it shares. Other
programs that open the file while a broker runs (``cellbus user``, ``cellbus status``
reads the broker) take no lock. A MongoDB database has one broker too, held by a lease its
broker renews (:class:`StoreClaim`, broker/store/_mongo_lease.py).

A SQLite file deleted (or replaced) while its broker runs goes on taking writes through the
broker's open descriptors, so the broker answered 202, confirmed devices' output and
published, all into a file no later broker would read: its restart found an empty store.
So the broker looks at the path every :data:`WATCH_INTERVAL` seconds
(:func:`watch_store_file`); once it names another file, or none, the broker stops with exit
status 1 (gateways answer 503, devices keep unconfirmed output in their outboxes).

So does it when the file's write-ahead log (``FILE-wal``) is deleted or replaced: what was
committed since the last checkpoint lives only there, so a broker that went on wrote every
later commit into a file nobody else would ever read, and one killed then (``kill -9``, a
crash, the host) lost all of it, requests it had answered 202 for and the output before
them alike: the store it restarted on did not have them. A broker that stops closes its
store, and SQLite's last close copies the log it still holds open into the file.

And when the log's index (``FILE-shm``) is: the broker goes on with the one it has mapped,
but the next process that opens the file (``cellbus user add``) builds a new index the
broker never sees, and what it commits is lost: the user it said it added was gone once the
broker had stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from protocol.errors import ConfigError

from .store import Store
from .store._sqlite_file import sqlite_path
from .store.base import CLAIM_RENEWAL
from .store.errors import StoreClaimed, StoreError, UnknownStore

#: Seconds between two looks at whether the store's path still names the file opened.
WATCH_INTERVAL = 1.0


class StoreHold:
    """The locks a broker holds on its SQLite file (:func:`hold_store`): ``FILE.broker-lock``
    (``fd``) and the file itself (``file_fd``, -1 if it could not be opened)."""

    def __init__(self, fd: int, path: Path, file_fd: int = -1) -> None:
        self.fd, self.path, self.file_fd = fd, path, file_fd

    def release(self) -> None:
        """Let go of both (after the store is closed: closing a descriptor of the file
        drops every POSIX lock this process holds on it, SQLite's included)."""
        for fd in (self.file_fd, self.fd):
            if fd >= 0:
                os.close(fd)  # closing the descriptor lets go of the flock
        self.fd = self.file_fd = -1


def hold_store(url: str) -> StoreHold | None:
    """Hold the SQLite file ``url`` names for this process, or raise :class:`ConfigError`
    if another broker holds it; None for a store that is no SQLite file, or one whose
    folder is missing (opening the store then says so)."""
    if urlsplit(url).scheme.lower() != "sqlite":
        return None
    try:
        path = sqlite_path(url)
    except UnknownStore:
        return None  # opening the store names what is wrong with the URL
    # Beside the file itself: a symbolic link to it (another path to the same file) must
    # find the same lock, as SQLite follows the link to keep its -wal beside the file.
    real = path.resolve()
    lock = real.with_name(real.name + ".broker-lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"broker cannot lock its store {path} ({lock}: {e.strerror}); "
                          "check that folder's permissions, or choose another --store") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise _in_use(path, holder, "") from None
    try:
        file_fd = _hold_file(real)
    except BlockingIOError as e:
        os.close(fd)
        raise _in_use(path, e.strerror or "unknown", " through another name of the same "
                      "file (a hard link)") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return StoreHold(fd, path, file_fd)


def _in_use(path: Path, holder: str, how: str) -> ConfigError:
    return ConfigError(f"broker: the store {path} is in use by another broker (pid {holder})"
                       f"{how}; stop that broker, or give this one a store of its own "
                       "(--store sqlite:///PATH)")


def _hold_file(real: Path) -> int:
    """The store file's own descriptor, flocked (created empty, 0600, if missing: SQLite
    takes an empty file for a new store), or -1 if it cannot be opened (opening the store
    then says why). A hard link is another name of the file whose lock file sits beside
    another name, so only a lock on the file itself (its inode) keeps a second broker off;
    flock and SQLite's own POSIX locks do not meet on a local filesystem. Raises
    :class:`BlockingIOError` whose ``strerror`` is the holder's pid when another process
    holds it."""
    try:
        try:
            fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC)  # a read-only store: says so later
        except FileNotFoundError:
            fd = os.open(real, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return -1
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _flock_holder(os.fstat(fd))
        os.close(fd)  # before SQLite opened the file: no lock of its own to drop
        raise BlockingIOError(errno.EWOULDBLOCK, holder) from None
    return fd


def _flock_holder(st: os.stat_result) -> str:
    """The pid holding a flock on the file ``st`` describes, from /proc/locks, or
    "unknown" (no /proc, or a holder in another pid namespace)."""
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with contextlib.suppress(OSError):
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()  # N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF
                if fields[1:2] == ["FLOCK"] and fields[5:6] == [where]:  # "->": a waiter
                    return fields[4]
    return "unknown"


def held_by_another_name(url: str) -> str | None:
    """Why a program that writes a broker's SQLite store beside it (``cellbus user``) must
    not write through ``url``, or None. Through the path the broker was given (or a
    symbolic link to its file) it shares the broker's -wal and -shm, and that is safe;
    through a hard link (another name of the file) it wrote a -wal of its own beside that
    name, which the broker never read, so what it wrote was lost. So: the file is held by a
    broker (its flock) while the lock file beside this name is not."""
    try:
        real = sqlite_path(url).resolve()
        fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC)
    except (UnknownStore, OSError):
        return None  # no such file (opening the store says so): nobody holds it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            holder = _flock_holder(os.fstat(fd))
    finally:
        os.close(fd)  # before SQLite opened the file here: no lock of its own to drop
    try:
        lock = os.open(real.with_name(real.name + ".broker-lock"), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        lock = -1
    try:
        if lock >= 0:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return None  # its broker runs on this very name
    finally:
        if lock >= 0:
            os.close(lock)
    return (f"the store {real} is in use by a broker (pid {holder}) under another name of "
            "the same file (a hard link): what is written through this name is lost to it; "
            "give --store the path that broker was given (its start line names it)")


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return None
    return now.st_dev, now.st_ino


async def watch_store_file(path: Path, gone: Callable[[str], None]) -> None:
    """Call ``gone(why)``, once, when ``path`` no longer names the file it names now (the
    store's, opened already), or its write-ahead log or shared-memory index (``-shm``) is
    removed or replaced."""
    opened = _identity(path)
    real = path.resolve()  # SQLite keeps the log beside the file a link points to
    wal, shm = (real.with_name(real.name + end) for end in ("-wal", "-shm"))
    # None until the store has them (a WAL store has both while open)
    log, index = _identity(wal), _identity(shm)
    while True:
        await asyncio.sleep(WATCH_INTERVAL)
        if _identity(path) != opened:
            gone(f"its store file {path} was removed or replaced while it ran: what it "
                 "stored since would be lost with this process, so it stops (exit status 1); "
                 "restore the file, or start the broker again on a store of its choice")
            return
        now, index_now = _identity(wal), _identity(shm)
        if log is not None and now != log:
            gone(f"the write-ahead log of its store, {wal}, was removed or replaced while it "
                 "ran: what the store took since the last checkpoint is only there, so it "
                 f"stops (exit status 1), {_CLOSING}")
            return
        if index is not None and index_now != index:
            gone(f"the shared-memory index of its store, {shm}, was removed or replaced while "
                 "it ran: another process that opens the store (cellbus user, a backup) "
                 "builds a new one that does not know what this broker's holds, and what it "
                 f"writes is lost, so it stops (exit status 1), {_CLOSING}")
            return
        log, index = log or now, index or index_now


#: How a broker whose store's -wal or -shm went stops, and what to do.
_CLOSING = ("copying the log it holds open into the store as it closes; start the broker "
            "again on the same --store (never delete a running SQLite store's -wal or -shm "
            "file)")


class StoreClaim:
    """This broker's claim on a store that several brokers could reach (MongoDB:
    broker/store/_mongo_lease.py; a SQLite store's claim is the lock above)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.owner = uuid.uuid4().hex
        self.held = False

    async def take(self) -> None:
        """Claim the store, or raise :class:`ConfigError` naming the broker that holds it."""
        try:
            await self.store.claim({"owner": self.owner, "host": socket.gethostname(),
                                    "pid": os.getpid(), "since": time.strftime(
                                        "%Y-%m-%d %H:%M:%S %Z")})
        except StoreClaimed as e:
            raise ConfigError(f"broker cannot use {self.store.describe()}: {e}; one store has "
                              "one broker: stop that one first, or give this one another "
                              "--store (a database of its own)") from None
        except StoreError as e:
            raise ConfigError(f"broker cannot claim its store: {e}") from None
        self.held = True

    async def keep(self, gone: Callable[[str], None]) -> None:
        """Renew the claim every second; call ``gone(why)`` once another broker holds the
        store (a store that does not answer meanwhile is not taken for lost)."""
        while True:
            await asyncio.sleep(CLAIM_RENEWAL)
            try:
                kept = await self.store.keep_claim(self.owner)
            except StoreError:
                continue  # the store is away: tried again (a broker that took it meanwhile
                # is seen at the first renewal that reaches it)
            if not kept:
                self.held = False
                gone("another broker took its store over while this one was stopped or cut "
                     "off from it: two brokers on one store end each other's cells, so this "
                     "one stops (exit status 1)")
                return

    async def release(self) -> None:
        """Give the claim up (a clean stop, before the store closes)."""
        if self.held:
            self.held = False
            with contextlib.suppress(StoreError):
                await self.store.release_claim(self.owner)

"""One broker per SQLite store: a broker holds its file for as long as it runs.

A store has one broker (:mod:`broker.sessions`), and nothing kept two off one SQLite file:
README's way to run a second ``up`` (a state directory of its own) gave both the default
store. Two brokers on one file each take the other's running cells for orphans of a broker
that died, and end them with ``DeviceLost``; each opens sessions for worksheets the other
serves and hands out requests the other stored. So a broker takes an exclusive ``flock`` on
``FILE.broker-lock`` beside the file before it reads anything, and a second broker on the
same file stops at start with one line that names the file, the pid holding it and
``--store``. The lock goes with the process that holds it (``kill -9`` included), so a
crashed broker never leaves a stale one behind. Other programs that open the file while a
broker runs (``cellbus user``, ``cellbus status`` reads the broker) take no lock; nor does a
MongoDB store, which several brokers may share.
"""

from __future__ import annotations

import fcntl
import os
from urllib.parse import urlsplit

from protocol.errors import ConfigError

from .store._sqlite_file import sqlite_path
from .store.errors import UnknownStore


class StoreHold:
    """The lock a broker holds on its SQLite file (:func:`hold_store`)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor lets go of the flock
            self.fd = -1


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
    lock = path.with_name(path.name + ".broker-lock")
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
        raise ConfigError(f"broker: the store {path} is in use by another broker (pid "
                          f"{holder}); stop that broker, or give this one a store of its own "
                          "(--store sqlite:///PATH)") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return StoreHold(fd)

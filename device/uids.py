"""Session uids: which a device may hand out, and which of them each live worker holds.

Two devices of one machine must never hand out the same uid: processes of one uid share
their process limit, and one could signal or trace the other's. So a device holds its range
alone, with a POSIX record lock on the bytes ``[first, last]`` of one file per machine,
:data:`LOCK_PATH` (the ranges of two locks overlap exactly when their byte ranges do). The
kernel drops the lock when the device's process ends, however it ends. ``--sandbox-uids
auto`` (the default) takes the first free block of :data:`AUTO_SIZE` uids from
:data:`AUTO_FIRST`; a range given by hand that overlaps another device's is refused.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from dataclasses import dataclass

from protocol.errors import ConfigError

DEFAULT_UIDS = "auto"
#: ``--sandbox-uids auto``: blocks of AUTO_SIZE uids from AUTO_FIRST, AUTO_BLOCKS of them.
AUTO_FIRST = 300000
AUTO_SIZE = 1000
AUTO_BLOCKS = 100
#: The machine's record of which device holds which session uids (root's, like the uids).
LOCK_PATH = "/run/cellbus/session-uids.lock"
#: ``struct flock`` of Linux on 64-bit machines: type, whence, start, len, pid (+ padding).
_FLOCK = struct.Struct("@hhqqi4x")


@dataclass
class UidLease:
    """The session uids a device holds alone on this machine while ``fd`` stays open."""
    uids: range
    fd: int = -1

    def describe(self) -> str:
        return f"{self.uids.start}-{self.uids.stop - 1}"

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def lease(spec: str, *, path: str = LOCK_PATH) -> UidLease:
    """Hold ``spec`` (``FIRST-LAST``, or ``auto``) for this process; ConfigError in one line
    if another device of this machine holds any of those uids, or if ``path`` cannot be
    used."""
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        raise ConfigError(f"--sandbox-uids: cannot keep the machine's record of session uids "
                          f"in {path}: {e.strerror}") from None
    ranges = [auto_range(n) for n in range(AUTO_BLOCKS)] if spec == "auto" \
        else [parse_uids(spec)]
    for uids in ranges:
        holder = _lock(fd, uids)
        if holder is None:
            return UidLease(uids, fd)
    os.close(fd)
    if spec == "auto":
        raise ConfigError(f"--sandbox-uids auto: other devices of this machine hold all "
                          f"{AUTO_BLOCKS} blocks of {AUTO_SIZE} uids from {AUTO_FIRST}; give "
                          "this one a range of its own")
    raise ConfigError(f"--sandbox-uids {spec}: another device of this machine ({holder}) "
                      "holds session uids in that range; give this one a range of its own, "
                      "or leave --sandbox-uids at auto")


def auto_range(n: int) -> range:
    return range(AUTO_FIRST + n * AUTO_SIZE, AUTO_FIRST + (n + 1) * AUTO_SIZE)


def _lock(fd: int, uids: range) -> str | None:
    """None once ``uids`` is locked for this process; else who holds some of them."""
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, len(uids), uids.start)
        return None
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EACCES):
            raise
    query = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, uids.start, len(uids), 0)
    try:
        _, _, start, length, pid = _FLOCK.unpack(fcntl.fcntl(fd, fcntl.F_GETLK, query))
    except OSError:
        return "a process"
    return f"process {pid}, uids {start}-{start + length - 1}"


def parse_uids(text: str) -> range:
    """``"300000-300999"`` -> range(300000, 301000); ValueError if it is not a sane range."""
    low, sep, high = text.partition("-")
    first, last = int(low), int(high if sep else low)
    if not 1000 <= first <= last < 2 ** 32 - 1:
        raise ValueError(f"uid range {text!r}: give FIRST-LAST, both at least 1000")
    return range(first, last + 1)


class UidPool:
    """The session uids of one template: each live worker holds one no other worker has."""

    def __init__(self, uids: range) -> None:
        self.free = list(reversed(uids))
        self.held: set[int] = set()

    def take(self) -> int:
        if not self.free:
            raise OSError(f"all {len(self.held)} session uids are in use (--sandbox-uids)")
        uid = self.free.pop()
        self.held.add(uid)
        return uid

    def give_back(self, uid: int) -> None:
        if uid in self.held:
            self.held.discard(uid)
            self.free.append(uid)

"""Per-session limits fitted into what the machine has for all of a device's sessions.

A session's own limits bound one session; two machine-wide pools are drawn on by every
session at once, and each session's share of them must hold whatever the others do:

- **memory**, within ``--memory-budget`` (a cgroup limit over every session's): if the
  sessions' own limits added up to more than the budget, the budget's OOM killer, not the
  session's own limit, decided, and it stops the biggest session, which may be another
  user's well within its own ``--max-memory``. So each worker's cgroup gets at most the
  budget divided by the most workers the device runs at once (sessions and ready ones): the
  sum of the limits never passes the budget, and a session within its limit is never
  stopped for another's memory. ``--max-memory`` stays the address space of a worker
  (``RLIMIT_AS``), which counts reservations, not memory used;
- **open files**, within the kernel's ``fs.file-max``, one count for the whole machine that
  neither cgroups nor uids bound: a session could take it all, and every unprivileged
  process of the machine (other sessions, a node not run as root) then failed to open
  anything (``ENFILE``); ``RLIMIT_NOFILE`` does not bound it (a process maps a file and
  closes it, again and again: 50,000 files held at 267 descriptors). A file's memory is
  charged to the cgroup of the process that opened it, so the session's memory limit
  bounds its files: the device raises ``fs.file-max`` to its maximum, as systemd does at
  boot (:func:`unbind_file_max`), and the machine's count no longer binds. Where it cannot
  (not root, no cgroups, a read-only ``/proc/sys``), :func:`fit` lowers the open files of a
  process so that all the device's workers hold at most half of it by descriptors, and the
  device's start warns that mapped files escape that bound.

:func:`fit` says what it changed, for the device's start log.
"""

from __future__ import annotations

import os
from dataclasses import replace

from .cgroups import Cgroups
from .limits import Limits, _size

#: The least memory a session's cgroup gets (a Python worker and a kernel start in it); a
#: budget that leaves less to each worker is oversold, and the device's start says so.
MIN_SESSION_MEMORY = 128 * 2**20
#: The fewest files a process may open, whatever fs.file-max leaves.
MIN_OPEN_FILES = 64
#: The share of fs.file-max the sessions of one device may hold together.
FILE_MAX_SHARE = 0.5
FILE_MAX = "/proc/sys/fs/file-max"
#: The largest fs.file-max the kernel takes (LONG_MAX), which systemd sets at boot.
FILE_MAX_LIMIT = 2**63 - 1


def file_max() -> int:
    """The machine's ``fs.file-max`` (0 if it cannot be read: no bound to fit)."""
    try:
        with open(FILE_MAX) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _write_file_max(value: int) -> None:
    with open(FILE_MAX, "w") as f:
        f.write(str(value))


def accounted() -> bool:
    """Whether sessions' files will be charged to cgroups of their own: the device runs as
    root where cgroups are (the sandbox's probe says for sure later)."""
    try:
        Cgroups.detect("")
    except OSError:
        return False
    return os.geteuid() == 0


def unbind_file_max(charged: bool) -> tuple[int, list[str]]:
    """Raise ``fs.file-max`` to its maximum where sessions' files are ``charged`` to their
    cgroups. Returns the fs.file-max that still binds sessions (0: none) and what to log."""
    files = file_max()
    if files == 0 or files >= FILE_MAX_LIMIT or not charged:
        return (0 if files >= FILE_MAX_LIMIT else files), []
    try:
        _write_file_max(FILE_MAX_LIMIT)
    except OSError as e:
        return files, [
            f"WARNING: cannot raise fs.file-max ({files}) to its maximum "
            f"({e.strerror or e}): each session process's open files are bounded to fit in "
            "half of it, but a process can hold more files than that by mapping each and "
            "closing it, and take the machine's count from every other unprivileged "
            f"process; raise it (sysctl fs.file-max={FILE_MAX_LIMIT}), as systemd does at "
            "boot"]
    return 0, [f"raised fs.file-max from {files} to its maximum, as systemd does at boot: "
               "a session's files are charged to its cgroup's memory, which bounds them, "
               "while one count for the machine let one session take every file an "
               "unprivileged process may open"]


def fit(limits: Limits, workers: int, budget: int, files: int) -> tuple[Limits, list[str]]:
    """``limits`` with each worker's cgroup memory and open files fitted for ``workers``
    workers at once into ``budget`` bytes (0: none) and ``files`` (``fs.file-max``; 0: none),
    and a line for each change (one that starts with ``WARNING:`` where the bound cannot
    hold: the budget leaves a worker less than :data:`MIN_SESSION_MEMORY`, which it then
    gets)."""
    said: list[str] = []
    workers = max(workers, 1)
    if budget > 0 and limits.memory_bytes > 0:
        share = budget // workers
        least = min(MIN_SESSION_MEMORY, limits.memory_bytes)
        if share < least:
            share = least
            said.append(
                f"WARNING: --memory-budget {_size(budget)} leaves each of up to {workers} "
                f"workers (--max-sessions and the ready ones of --prefork, --kernel-prefork) "
                f"less than {_size(least)}; each gets {_size(least)}, which together "
                "is more than the budget: a session may then be stopped for another's "
                "memory; give a larger budget or fewer --max-sessions")
        elif share < limits.memory_bytes:
            said.append(
                f"each session's memory: {_size(share)} (--max-memory {_size(limits.memory_bytes)} "
                f"for each of up to {workers} workers is more than --memory-budget "
                f"{_size(budget)}; so that no session is stopped for another's memory, the "
                "budget is split; give a larger budget or fewer --max-sessions for more)")
        if share < limits.memory_bytes:
            limits = replace(limits, cgroup_memory_bytes=share)
    if files > 0 and limits.processes > 0 and limits.open_files > 0:
        per_process = int(files * FILE_MAX_SHARE) // (workers * limits.processes)
        if per_process < limits.open_files:
            open_files = max(per_process, MIN_OPEN_FILES)
            limits = replace(limits, open_files=open_files)
            said.append(
                f"open files of each session process: {open_files} (so that up to {workers} "
                f"workers of {limits.processes} processes (--max-processes) hold at most "
                f"half of this machine's {files} (fs.file-max) together"
                + (")" if open_files == per_process else
                   f"; not below {MIN_OPEN_FILES}, so they may hold more: give a lower "
                   "--max-processes or --max-sessions)"))
    return limits, said

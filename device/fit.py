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
  neither cgroups nor uids bound: at 1,024 files a process and 256 processes a session,
  a few sessions could take it all, and every unprivileged process of the machine (other
  sessions, a node not run as root) then failed to open anything (``ENFILE``). So a
  process may open at most what keeps all of the device's workers together within half of
  ``fs.file-max``: the other half stays for the host and its nodes.

:func:`fit` says what it changed, for the device's start log.
"""

from __future__ import annotations

from dataclasses import replace

from .limits import Limits, _size

#: The least memory a session's cgroup gets (a Python worker and a kernel start in it); a
#: budget that leaves less to each worker is oversold, and the device's start says so.
MIN_SESSION_MEMORY = 128 * 2**20
#: The fewest files a process may open, whatever fs.file-max leaves.
MIN_OPEN_FILES = 64
#: The share of fs.file-max the sessions of one device may hold together.
FILE_MAX_SHARE = 0.5
FILE_MAX = "/proc/sys/fs/file-max"


def file_max() -> int:
    """The machine's ``fs.file-max`` (0 if it cannot be read: no bound to fit)."""
    try:
        with open(FILE_MAX) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


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

"""Reaping the exited children that user code forked and never waited for.

``os.fork()`` in a cell (a fork bomb's children, say, which end as soon as their own fork
fails) leaves zombies: they hold a process slot each until their parent waits, and the
worker is their parent for the session's whole life, so a session's process limit would
stay used up. After each execution the worker waits for those zombies, and only those: a
child that a live ``subprocess.Popen`` or ``multiprocessing.Process`` still owns is left for
its owner to wait on, so its exit status is never stolen.

A fork bomb does not reliably end by itself: at the session's process limit every failing
fork ends one bomb process and frees a slot that another one's next fork takes, so it dies
out only by chance, holding the session's process slots meanwhile. When a cell ends because
it hit that limit, :func:`end_started_since` stops the processes of the worker's session
(its ``setsid`` session, which forks inherit) that started during the cell; processes of
earlier cells (a server a user keeps running, say) are left alone.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time


def _children() -> set[int]:
    pids: set[int] = set()
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.update(int(p) for p in f.read().split())
    except OSError:
        pass
    return pids


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _owned() -> set[int]:
    """Children some live object will wait for."""
    owned: set[int] = set()
    subprocess = sys.modules.get("subprocess")
    if subprocess is not None:
        owned.update(p.pid for p in gc.get_objects()
                     if isinstance(p, subprocess.Popen) and p.returncode is None)
    process = sys.modules.get("multiprocessing.process")
    if process is not None:
        owned.update(p.pid for p in getattr(process, "_children", ()) if p.pid)
    return owned


def reap_strays() -> set[int]:
    """Wait for every zombie child nobody owns; returns the children left (still running,
    or owned by a live ``Popen``). A worker with no child at all (most cells) learns that
    from one ``waitid`` instead of reading ``/proc``."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return set()
    children = _children()
    zombies = {pid for pid in children if _is_zombie(pid)}
    if not zombies:
        return children
    for pid in zombies - _owned():
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                children.discard(pid)
        except ChildProcessError:
            children.discard(pid)
    return children


#: Words of the error a fork gets at the process limit (EAGAIN), as Python reports it.
_AT_PROCESS_LIMIT = "Resource temporarily unavailable"
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def hit_process_limit(ename: str, evalue: str) -> bool:
    """Whether a cell's error is a fork refused at the process limit."""
    return ename in ("BlockingIOError", "OSError") and _AT_PROCESS_LIMIT in evalue


def boot_ticks() -> int:
    """Now, in the clock ticks since boot that ``/proc/PID/stat`` gives start times in."""
    clock = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)  # Linux; elsewhere unused
    return int(time.clock_gettime(clock) * _TICKS)


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, session id, start time in ticks) of ``pid``, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return fields[0], int(fields[3]), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def end_started_since(ticks: int, *, keep: set[int], rounds: int = 100) -> int:
    """SIGKILL every live process of this worker's session, other than the worker and
    ``keep`` (its children from before the cell: a start time is only as fine as a clock
    tick), that started at ``ticks`` (see :func:`boot_ticks`) or later; returns how many.
    Repeats until none is left (a bomb forks while it is being stopped), at most ``rounds``
    times. Each process is signalled through a pidfd after its facts are read again, so a
    PID reused meanwhile is never hit. Without ``/proc`` and pidfds (not Linux), nothing."""
    if not hasattr(os, "pidfd_open") or not os.path.isdir("/proc"):
        return 0
    me, sid = os.getpid(), os.getsid(0)
    ended: set[int] = set()  # a process signalled may still be on its way out next round
    for _ in range(rounds):
        found = []
        for pid in (int(name) for name in os.listdir("/proc") if name.isdigit()):
            if pid != me and pid not in keep:
                facts = _stat(pid)
                if facts is not None and facts[0] != "Z" and facts[1] == sid and facts[2] >= ticks:
                    found.append(pid)
        if not found:
            break
        for pid in found:
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue  # gone already
            try:
                facts = _stat(pid)
                if facts is not None and facts[1] == sid and facts[2] >= ticks:
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                    ended.add(pid)
            except OSError:
                pass
            finally:
                os.close(fd)
    reap_strays()
    return len(ended)

"""Reaping the exited children that user code forked and never waited for.

``os.fork()`` in a cell (a fork bomb's children, say, which end as soon as their own fork
fails) leaves zombies: they hold a process slot each until their parent waits, and the
worker is their parent for the session's whole life, so a session's process limit would
stay used up. After each execution the worker waits for those zombies, and only those: a
child that a live ``subprocess.Popen`` or ``multiprocessing.Process`` still owns is left for
its owner to wait on, so its exit status is never stolen.
"""

from __future__ import annotations

import gc
import os
import sys


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


def reap_strays() -> int:
    """Wait for every zombie child nobody owns; returns how many were reaped."""
    zombies = {pid for pid in _children() if _is_zombie(pid)}
    if not zombies:
        return 0
    reaped = 0
    for pid in zombies - _owned():
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                reaped += 1
        except ChildProcessError:
            pass
    return reaped

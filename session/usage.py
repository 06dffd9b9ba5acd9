"""What one execution used, measured by the worker around the cell's code.

Every ``execute_reply`` carries it in ``metadata["usage"]`` (the device adds the output
bytes, which it counts itself; see :mod:`device.workers`):

- ``wall_seconds``: from the request's start to its end.
- ``cpu_seconds``: user + system time of the worker and of the children it waited for during
  the cell (``getrusage``; a child still running at the end is not in it yet).
- ``peak_memory_bytes``: the highest resident memory of the worker during the cell, of a
  child waited for during the cell, or of the session's cgroup where the worker can read and
  reset ``memory.peak`` (cgroup v2, Linux 6.12+), whichever is highest. The worker's own is
  known here only when the cell raised the worker's lifetime peak (``VmHWM``) or Linux let
  it reset that peak (``/proc/self/clear_refs``, which a sandboxed worker may not write);
  otherwise the device's samples of the worker's resident size stand for it
  (:mod:`device.usage`): a thread here to sample it would compete with the cell's code for
  the GIL (and split its printed lines into separate stream messages).
- ``processes``: processes the cell's code started from the worker (``fork``,
  ``subprocess``, ``posix_spawn``, ``system``), counted by an audit hook that user code
  cannot remove; what those processes start in turn is not counted.

The figures are the worker's own word, reported for the user's information: user code runs
in the same process and could change them, so nothing is charged or enforced by them.
"""

from __future__ import annotations

import functools
import resource
import sys
import time
from typing import Any

#: Audit events that start a process (see the ``sys.audit`` events table).
SPAWN_EVENTS = frozenset({"os.fork", "os.forkpty", "os.posix_spawn", "os.posix_spawnp",
                          "os.system", "subprocess.Popen", "pty.spawn"})
_CGROUP_ROOT = "/sys/fs/cgroup"
_started = [0]  # processes started by this process so far (see _audit)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in SPAWN_EVENTS:
        _started[0] += 1


def install() -> None:
    """Count process starts from now on (once per process; audit hooks stay for good)."""
    if not getattr(install, "done", False):
        sys.addaudithook(_audit)
        install.done = True  # type: ignore[attr-defined]


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _children_maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def _peak_rss() -> int:
    """This process's peak resident size in bytes: ``VmHWM`` of ``/proc/self/status`` (reset
    with it by ``clear_refs``) without reading that file. ``getrusage`` also counts the peak
    of a program this process replaced by ``exec``; a worker is forked from the template."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def proc_status(field: str) -> int:
    """A size from this process's ``/proc/self/status`` (``VmHWM``, ``VmRSS``), in bytes;
    0 if unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _reset_vm_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # 5: reset the peak resident set size
        return True
    except OSError:
        return False  # not Linux, or not allowed (a sandboxed worker is not dumpable)


@functools.cache
def _cgroup_peak_file() -> str | None:
    """The ``memory.peak`` of this process's cgroup (one lookup: a worker stays in the
    group the device put it in before it ran any code)."""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return f"{_CGROUP_ROOT}{line[3:].strip().rstrip('/')}/memory.peak"
    except OSError:
        pass
    return None


def _reset_cgroup_peak(path: str | None) -> bool:
    """Reset the session cgroup's ``memory.peak`` (True if this kernel lets us)."""
    if path is None:
        return False
    try:
        with open(path, "w") as f:
            f.write("0")
        return True
    except OSError:
        return False


def _read_int(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


class Meter:
    """Measures one execution: :meth:`start` before the cell's code, :meth:`usage` after."""

    def __init__(self) -> None:
        self._wall = self._cpu = 0.0
        self._children_peak = 0
        self._forks = 0
        self._cgroup: str | None = None
        self._hwm = 0

    def start(self) -> None:
        self._forks = _started[0]
        self._children_peak = _children_maxrss()
        self._hwm = 0 if _reset_vm_hwm() else _peak_rss()
        path = _cgroup_peak_file()
        self._cgroup = path if _reset_cgroup_peak(path) else None
        self._cpu = _cpu()
        self._wall = time.monotonic()

    def usage(self) -> dict[str, Any]:
        wall = time.monotonic() - self._wall
        cpu = _cpu() - self._cpu
        hwm = _peak_rss()
        peaks = [hwm if hwm > self._hwm else 0]  # 0: below an earlier cell's (the device's)
        if (children := _children_maxrss()) > self._children_peak:
            peaks.append(children)
        if self._cgroup is not None:
            peaks.append(_read_int(self._cgroup))
        return {"wall_seconds": round(wall, 4), "cpu_seconds": round(max(cpu, 0.0), 4),
                "peak_memory_bytes": max(peaks), "processes": _started[0] - self._forks}

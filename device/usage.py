"""What the device reports of an execution's usage (``metadata.usage`` of its
``execute_reply``, see :mod:`session.usage`): the worker's figures that have the right
type, the output bytes the device counted itself, and the peak resident memory of the
worker's processes as the device sampled it (:class:`MemoryWatch`) where that is higher than
the worker's own figure; for a run whose worker died (a limit stopped it, say), what the
device saw of it (:func:`seen_usage`)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

#: Seconds between two looks at a running worker's resident size.
SAMPLE_INTERVAL = 0.02

#: What a worker may say about an execution's usage (session.usage), and the type of each.
USAGE_FIELDS = {"wall_seconds": float, "cpu_seconds": float, "peak_memory_bytes": int,
                "processes": int}


def usage_of(metadata: Any, output_bytes: int, peak_memory: int = 0) -> dict[str, Any]:
    """The usage an ``execute_reply`` reports: the worker's figures that have the right
    type (nothing else it says passes), the output bytes this device counted, and the peak
    memory it sampled if that is higher than the worker's."""
    said = metadata.get("usage") if isinstance(metadata, dict) else None
    said = said if isinstance(said, dict) else {}
    usage: dict[str, Any] = {k: said[k] for k, kind in USAGE_FIELDS.items()
                             if isinstance(said.get(k), (int, float))
                             and not isinstance(said.get(k), bool)
                             and (kind is float or isinstance(said.get(k), int))}
    usage["output_bytes"] = output_bytes
    if peak_memory > usage.get("peak_memory_bytes", 0):
        usage["peak_memory_bytes"] = peak_memory
    return usage


def seen_usage(wall_seconds: float, output_bytes: int) -> dict[str, Any]:
    """The usage of a run whose worker died: its figures went with it, so the wall time and
    output bytes the device measured."""
    return {"wall_seconds": round(wall_seconds, 4), "output_bytes": output_bytes}


#: Bytes in a page, the unit of ``/proc/PID/statm``.
PAGE = os.sysconf("SC_PAGE_SIZE")


def _read(path: str) -> bytes:
    """The whole of a small ``/proc`` file. With ``os.open`` and ``os.read``: ``open()``
    built a raw file, a buffer and (for text) a decoder around each of the files the last
    look at a worker reads, several per execution, and that cost the device about a twentieth
    of its instructions per execution (bench/RESULTS.md, issue 25, twelfth pass)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        parts = []
        while chunk := os.read(fd, 65536):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def _rss(pid: int) -> int:
    """Resident bytes of process ``pid`` (``/proc/PID/statm``, the same figure as ``VmRSS``
    of ``/proc/PID/status`` at half the cost to read); 0 if unknown."""
    try:
        return int(_read(f"/proc/{pid}/statm").split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def children(pid: int) -> list[int]:
    """The pids of the direct children of ``pid`` (none if it ended)."""
    pids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            pids.extend(int(p) for p in _read(f"/proc/{pid}/task/{tid}/children").split())
    except (OSError, ValueError):
        pass
    return pids


def tree_rss(pid: int, most: int = 64) -> int:
    """Resident bytes of ``pid`` and its descendants together (at most ``most`` processes:
    a fork bomb is not worth reading all of); pages they share count once per process."""
    total, todo, seen = 0, [pid], 0
    while todo and seen < most:
        p = todo.pop()
        seen += 1
        total += _rss(p)
        todo.extend(children(p))
    return total


class MemoryWatch:
    """The peak resident memory of a worker's processes (the process the device started,
    which may be the sandbox's init, and everything below it) while one request runs: the
    highest of samples taken every :data:`SAMPLE_INTERVAL` seconds (a spike shorter than
    that can be missed; the worker reports its own exact peak when the request raised it).
    There is no look when the request starts: what the processes hold then was there before
    it (the look at its end still sees it), and that look cost the device about a tenth of
    its CPU per execution of a short cell (bench/RESULTS.md, "Issue 25, third pass"). The
    samples run on a timer of the loop, not a task: most cells end before the first."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.highest = 0
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(SAMPLE_INTERVAL,
                                                                        self._sample)

    def _sample(self) -> None:
        self.highest = max(self.highest, tree_rss(self.pid))
        self._timer = self._loop.call_later(SAMPLE_INTERVAL, self._sample)

    def stop(self) -> int:
        """Stop sampling, with a last look the first time; the peak seen (0 if /proc told
        nothing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self.highest = max(self.highest, tree_rss(self.pid))
        return self.highest

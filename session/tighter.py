"""A request's own limits (see :mod:`protocol.asked`), applied by the worker to itself for
one execution: lower soft ``RLIMIT_AS`` (the address space the worker has now plus the
memory the request allows: a live session already holds its interpreter and its variables)
and ``RLIMIT_CPU`` (the CPU time used so far plus what the request allows), restored when
the execution ends.

Only soft limits move, and never above the hard ones the device set (the operator's
maxima): the worker may always lower a soft limit and raise it back up to the hard one. A
cell that passes its memory gets a ``MemoryError``; one that passes its CPU time gets
``SIGXCPU``, which ends the worker (the device names the limit, see
:mod:`device.workers`). User code could raise its own soft limits back, but these are
limits the user asked for, not the operator's, which stay hard.
"""

from __future__ import annotations

import math
import resource
from collections.abc import Iterator
from contextlib import contextmanager

from protocol.asked import Asked

from .usage import proc_status


def _cpu_used() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _lower(which: int, soft: int, saved: list[tuple[int, tuple[int, int]]]) -> None:
    old_soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    if old_soft != resource.RLIM_INFINITY and old_soft <= soft:
        return  # already as tight
    resource.setrlimit(which, (soft, hard))
    saved.append((which, (old_soft, hard)))


@contextmanager
def applied(asked: Asked) -> Iterator[None]:
    """Run the block under ``asked`` (memory and cpu; wall is the device's to enforce)."""
    saved: list[tuple[int, tuple[int, int]]] = []
    try:
        if "memory" in asked:
            _lower(resource.RLIMIT_AS, proc_status("VmSize") + int(asked["memory"]), saved)
        if "cpu" in asked:
            _lower(resource.RLIMIT_CPU, math.ceil(_cpu_used() + asked["cpu"]), saved)
        yield
    finally:
        for which, limits in reversed(saved):
            resource.setrlimit(which, limits)

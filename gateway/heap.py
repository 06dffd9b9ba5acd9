"""Give memory a departed client made the gateway hold back to the system.

A client that took a large replay or a long-poll answer made the gateway allocate and free
megabytes in pieces; glibc keeps freed heap pages for reuse, so the process stayed that
large after the client left (tests/test_slow_clients.py measures it). After such a client,
:func:`trim_soon` asks glibc to return what is free, at most once per :data:`INTERVAL`, so a
stream of departures costs one trim a second at most; and :func:`configure` keeps blocks of
a MiB or more out of the heap altogether.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import time

#: Seconds between two trims.
INTERVAL = 1.0
#: Seconds from a departure to its trim: what the client held (a replay's page, in a task
#: that is being cancelled) is freed first.
DELAY = 0.05
#: A client that carried at least this many bytes is worth a trim when it goes.
WORTH_IT = 1024 * 1024


def _glibc() -> ctypes.CDLL | None:
    """glibc, or None on a C library without ``malloc_trim`` (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 (both must be there)
        return libc
    except (OSError, AttributeError):
        return None


_libc = _glibc()
_trim = _libc.malloc_trim if _libc is not None else None
_last = 0.0  # when the last trim ran (monotonic)
_pending: asyncio.TimerHandle | None = None
#: ``mallopt`` parameter: blocks at least this big are mapped on their own.
M_MMAP_THRESHOLD = -3
#: Blocks of a MiB or more (a long-poll's answer, a replay's page) get their own mapping,
#: returned to the system when freed. Left to itself, glibc raises its threshold to the
#: largest block freed so far (up to 32 MiB); then such blocks come from the heap, and a
#: few rounds of large answers left the gateway larger each round.
MMAP_THRESHOLD = 1024 * 1024


def configure() -> None:
    """Fix glibc's mmap threshold (:data:`MMAP_THRESHOLD`); call once at start."""
    if _libc is not None:
        _libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def trim_soon(carried: int) -> None:
    """A client that carried ``carried`` bytes is gone (or done with a large transfer):
    trim the heap shortly, and not within :data:`INTERVAL` of the last trim."""
    global _pending
    if _trim is None or carried < WORTH_IT or _pending is not None:
        return
    wait = max(DELAY, _last + INTERVAL - time.monotonic())
    _pending = asyncio.get_running_loop().call_later(wait, _run)


def _run() -> None:
    global _last, _pending
    _pending = None
    _last = time.monotonic()
    assert _trim is not None
    _trim(0)

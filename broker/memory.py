"""Give the memory a burst of output used back to the operating system once it is over.

A print flood passes through the broker as thousands of messages: frames received, unpacked,
packed again for the store and the feed, and freed. Python frees them to glibc's malloc, which
keeps the freed pages for reuse instead of returning them (its heaps shrink only from the top,
and the threads' arenas hardly ever), so the broker's resident memory stayed at its peak after
every flood, bounded by nothing but the largest burst so far. Two glibc settings fix that:

- ``mallopt(M_MMAP_THRESHOLD, 128 KiB)``: glibc starts at that threshold but raises it each
  time a block above it is freed (up to 32 MiB), after which a cell's growing output text and
  big frames come from the heaps and stay there. Fixed, every block above it is mapped on its
  own and unmapped when freed; it also lowers the peak of a flood.
- ``malloc_trim(0)`` returns every free page of every arena; :func:`trim_after_bursts` calls
  it when the resident set has grown by :data:`TRIM_GROWTH` since the last call, checked
  every :data:`TRIM_INTERVAL` seconds (a look at ``/proc/self/statm``), and then at each look
  until the resident set is back within :data:`TRIM_GROWTH` of where it was before the
  burst, for at most :data:`SETTLE_LOOKS` looks (what it holds then is its new level): a
  loaded broker may free a burst's last messages seconds after it stopped growing (its
  feed's queue drains as fast as a busy gateway reads), which the one trim that followed
  the growth did not see. A quiet broker never trims, and a busy one at most that often.

What stays after a flood is what the broker keeps on purpose: the views of recent cells
(:mod:`broker.cells`, bounded in bytes) and SQLite's page caches (2 MB a connection).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
from collections.abc import Callable
from typing import Final

#: Seconds between looks at the resident set.
TRIM_INTERVAL: Final = 2.0
#: Bytes the resident set must have grown by since the last trim for the next one.
TRIM_GROWTH: Final = 16 * 2**20
#: Looks a burst's end is trimmed at, at most, while the resident set stays up (30 s).
SETTLE_LOOKS: Final = 15
#: Blocks at least this big are mapped on their own (glibc's initial threshold, kept fixed).
MMAP_THRESHOLD: Final = 128 * 1024
M_MMAP_THRESHOLD: Final = -3  # mallopt's parameter number, from glibc's <malloc.h>

log = logging.getLogger("cellbus.broker")


def resident_bytes() -> int:
    """This process's resident set, from ``/proc/self/statm`` (0 where there is none)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def glibc_malloc() -> Callable[[], object] | None:
    """Fix glibc's mmap threshold (module docstring) and return its ``malloc_trim(0)``; None
    where the C library is not glibc (musl, macOS), which is then left alone."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        trim, mallopt = libc.malloc_trim, libc.mallopt
    except (OSError, AttributeError, TypeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


async def trim_after_bursts(*, interval: float = TRIM_INTERVAL,
                            growth: int = TRIM_GROWTH) -> None:
    """Run forever: return freed memory to the system after each burst (module docstring)."""
    trim = glibc_malloc()
    if trim is None or not resident_bytes():
        log.info("broker: no glibc malloc or no /proc here; memory freed after a burst "
                 "stays with the process")
        return
    floor = low = resident_bytes()  # after the last trim; before the last burst
    left = 0  # looks to trim at while a burst settles
    while True:
        await asyncio.sleep(interval)
        if resident_bytes() - floor >= growth:
            left = SETTLE_LOOKS  # a burst: trim now, and at each look until it settles
        if not left:
            continue
        trim()
        floor, left = resident_bytes(), left - 1
        if floor - low < growth or not left:  # back where it was, or this is its new level
            low, left = floor, 0

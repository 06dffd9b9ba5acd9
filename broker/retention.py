"""Retention at the broker: finished sessions' message logs are compacted in the background.

``--retention DURATION`` (``CELLBUS_BROKER_RETENTION``; default 7 days; ``0`` or ``off``
turns it off) is how long after a session finished its messages stay whole. After that they
are compacted down to each cell's final output (:mod:`broker.store.compaction`): what a
client reads with ``/update?since=0`` is unchanged, and seqs are never reused.

Cadence: a pass every ``retention / 10``, but at least every hour and at most every second
(:func:`cadence`); the first one a cadence after start-up. A pass that compacted something
then asks the store to give the space back to the disk (``Store.reclaim_space``: for SQLite
an incremental vacuum and a WAL checkpoint) and logs one line with what it reclaimed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Final

from .store import Store, StoreError

#: How long finished sessions' messages stay whole, by default.
DEFAULT_RETENTION: Final = 7 * 24 * 3600.0
DEFAULT_TEXT: Final = "7d"
#: Bounds of the time between two compaction passes.
MIN_INTERVAL: Final = 1.0
MAX_INTERVAL: Final = 3600.0
_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION: Final = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)\s*", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """Seconds in ``"90"``, ``"45s"``, ``"30m"``, ``"12h"``, ``"7d"``, ``"2w"`` (or a sum such
    as ``"1h30m"``); ``"0"``, ``"off"`` and ``"never"`` are 0. Raises ValueError."""
    if text.strip().lower() in ("off", "never", "none"):
        return 0.0
    total, pos = 0.0, 0
    while pos < len(text):
        match = _DURATION.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"not a duration: {text!r} (use e.g. 45s, 30m, 12h, 7d or off)")
        total += float(match.group(1)) * _UNITS[match.group(2).lower()]
        pos = match.end()
    if pos == 0:
        raise ValueError(f"not a duration: {text!r} (use e.g. 45s, 30m, 12h, 7d or off)")
    return total


def format_duration(seconds: float) -> str:
    """``7d``, ``12h``, ``30m``, ``45s``: the largest unit that divides ``seconds``."""
    for unit in ("d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{seconds / _UNITS[unit]:g}{unit}"
    return f"{seconds:g}s"


def cadence(retention: float) -> float:
    """Seconds between compaction passes for a retention period."""
    return min(MAX_INTERVAL, max(MIN_INTERVAL, retention / 10))


async def run(store: Store, retention: float, log: logging.Logger) -> None:
    """Compact every :func:`cadence` seconds until cancelled; a failed pass is logged and
    the next one tries again."""
    interval = cadence(retention)
    log.info("broker retention: message logs of sessions finished over %s ago are compacted "
             "to their cells' final output; a pass every %s", format_duration(retention),
             format_duration(interval))
    while True:
        await asyncio.sleep(interval)
        try:
            await compaction_pass(store, retention, log)
        except StoreError as e:
            log.warning("broker retention: a compaction pass failed: %s; trying again in %s",
                        e, format_duration(interval))


async def compaction_pass(store: Store, retention: float, log: logging.Logger) -> None:
    """One pass: compact, give the space back, log what was reclaimed."""
    started = time.monotonic()
    stats = await store.compact(time.time() - retention)
    if stats.failed:
        log.warning("broker retention: %d sessions could not be compacted (tried again next "
                    "pass): %s", stats.failed, "; ".join(stats.errors))
    if not stats.sessions:
        return
    space = await store.reclaim_space()
    log.info("broker retention: compacted %d sessions finished over %s ago in %.2f s: %d "
             "messages removed, %d rewritten, %d requests removed, %s of messages freed%s",
             stats.sessions, format_duration(retention), time.monotonic() - started,
             stats.messages_removed, stats.messages_rewritten, stats.requests_removed,
             _bytes(stats.bytes_freed), f"; {space}" if space else "")


def _bytes(n: int) -> str:
    if abs(n) < 1024:
        return f"{n} bytes"
    size = n / 1024
    for unit in ("KiB", "MiB"):
        if abs(size) < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"

"""Log lines that a peer's messages cause, at a bounded rate.

A node logs what it drops (a bad signature, a message it refuses) so that an operator sees a
misconfigured or hostile peer; one line per message let that peer write the log as fast as
it could send, filling the disk and burying every other line. :class:`RateLog` logs

* the first line of a *key* (a peer and what went wrong) at once, then at most one per
  :data:`INTERVAL` seconds, saying how many like it were not logged since;
* at most :data:`BURST` lines per interval over all keys together, so that a peer making
  up new names (routing ids, kernels) cannot get a line for each: those are counted and the
  next line logged says how many were left out.

The table of keys holds only keys logged within the last interval (at most :data:`BURST`
of them, plus the lapsed ones until :data:`MAX_KEYS` clears them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final

import zmq

from .msgtypes import DELIM

#: Seconds between two lines of the same key.
INTERVAL: Final = 10.0
#: Lines per interval over all keys together.
BURST: Final = 20
#: Keys remembered before the lapsed ones are forgotten.
MAX_KEYS: Final = 1024


class RateLog:
    """``log``'s lines, each under a key, at most one per key per ``interval`` and at most
    ``burst`` per interval in all (see the module's docstring)."""

    def __init__(self, log: logging.Logger, *, interval: float = INTERVAL, burst: int = BURST,
                 max_keys: int = MAX_KEYS, clock: Callable[[], float] = time.monotonic) -> None:
        self.log, self.interval, self.burst, self.max_keys = log, interval, burst, max_keys
        self.clock = clock
        #: key -> (when it was last logged, lines of it not logged since).
        self.keys: dict[Hashable, tuple[float, int]] = {}
        self.window, self.lines = -interval, 0
        #: Lines left out by the burst bound (or of keys forgotten), said by the next line.
        self.left_out = 0

    def warning(self, key: Hashable, message: str, *args: Any) -> bool:
        """Log ``message % args`` at WARNING unless ``key`` or the burst bound says not
        now; True if it was logged."""
        return self.emit(logging.WARNING, key, message, *args)

    def info(self, key: Hashable, message: str, *args: Any) -> bool:
        """As :meth:`warning`, at INFO."""
        return self.emit(logging.INFO, key, message, *args)

    def emit(self, level: int, key: Hashable, message: str, *args: Any) -> bool:
        now = self.clock()
        if now - self.window >= self.interval:
            self.window, self.lines = now, 0
        last, unlogged = self.keys.get(key, (None, 0))
        if last is not None and now - last < self.interval:
            self.keys[key] = (last, unlogged + 1)
            return False
        if self.lines >= self.burst:
            if last is not None:
                self.keys[key] = (last, unlogged + 1)
            else:
                self.left_out += 1
            return False
        self.lines += 1
        if last is None and len(self.keys) >= self.max_keys:
            self._forget(now)
        self.keys[key] = (now, 0)
        notes = []
        if unlogged:
            notes.append(f"{unlogged} more like it since its last line")
        if self.left_out:
            notes.append(f"{self.left_out} other lines left out (at most {self.burst} per "
                         f"{self.interval:g} s)")
            self.left_out = 0
        self.log.log(level, message + (f" ({'; '.join(notes)})" if notes else ""), *args)
        return True

    def _forget(self, now: float) -> None:
        """Drop keys not logged within the interval; their unlogged counts go to left_out."""
        for key, (last, unlogged) in list(self.keys.items()):
            if now - last >= self.interval:
                del self.keys[key]
                self.left_out += unlogged


def routing_id(frames: Sequence[bytes | zmq.Frame]) -> str:
    """The peer a ROUTER socket received ``frames`` from (its routing id, the first frame
    before the delimiter): quoted when it is a name (a device's routing id is its
    --device-id: the operator then knows which node to look at, where hex such as
    6465762d61 hid 'dev-a'), else in hex (ZeroMQ's own ids begin with a zero byte), at most
    32 digits; "" when there is none (a DEALER's or SUB's message, or no delimiter within
    the first frames). A name is printable ASCII without spaces: nothing a peer sets can
    split or forge a log line."""
    raw = [f if isinstance(f, bytes) else f.bytes for f in frames[:8]]
    if DELIM not in raw or raw.index(DELIM) == 0:
        return ""
    ident = raw[0][:32]
    if ident and all(0x21 <= b <= 0x7e and b != 0x27 for b in ident):
        return f"'{ident.decode('ascii')}'"
    return raw[0][:16].hex()

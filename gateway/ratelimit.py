"""``--rate N/min``: how many requests that run code one user (or address) may make, and
what its big reads may take (gateway/bigreads.py: a big answer costs a token, a replay's
page a token per MiB it carried).

One token bucket per key (``user:NAME``, or ``ip:ADDRESS`` without auth): it holds up to N
tokens, refills at N per minute, and a request that finds it empty is refused with the seconds
until the next token, which the gateway sends as ``Retry-After`` with a 429. It is checked
before anything reaches the broker, so a refused request stores nothing.

Not device/pacing.py's ``TokenBucket``: the gateway may not import device/ (components share
only protocol/), and that bucket makes its caller wait, where this one must refuse at once.
Not the ``limits`` library either: its in-memory storage expires keys from a timer thread,
and its strategies are windows (fixed, moving, sliding counter), not a bucket that refills
smoothly and says when its next token comes. Nor ``aiolimiter``: an ``AsyncLimiter`` is one
leaky bucket whose ``acquire`` makes its caller wait; the gateway needs one per key (idle
ones forgotten, :data:`MAX_KEYS`), a refusal that says its seconds, and a page paid for once
its size is known, below zero if need be (:meth:`RateLimiter.spend`). Each would need the
key map and the refusal written around it; the whole job is the forty lines below.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Final

from protocol.errors import ConfigError

#: Keys remembered at most; when there are more, the idle (full) buckets are forgotten.
MAX_KEYS: Final = 100_000
_UNITS: Final = {"s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}
_RATE: Final = re.compile(r"\s*(\d+)\s*/\s*([a-z]+)\s*")


@dataclass(frozen=True)
class Rate:
    """``count`` requests per ``per`` seconds (also the most allowed at once)."""

    count: int
    per: float

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.per, f"{self.per:g}s")
        return f"{self.count}/{unit}"


def parse_rate(text: str, option: str = "--rate") -> Rate | None:
    """``"30/min"`` (also ``/s``, ``/h``) as a :class:`Rate`; ``"0"``, ``""`` or ``"off"``:
    no limit. Raises :class:`ConfigError` saying the form (of ``option``)."""
    if text.strip().lower() in ("", "0", "off", "none"):
        return None
    m = _RATE.fullmatch(text.lower())
    if m is None or m.group(2) not in _UNITS or int(m.group(1)) < 1:
        raise ConfigError(f"{option} {text!r}: give requests per time like 30/min (or N/s, N/h); "
                          "0 for no limit")
    return Rate(int(m.group(1)), _UNITS[m.group(2)])


class RateLimiter:
    """A token bucket per key: :meth:`take` is None when allowed, else seconds to wait.

    A run takes one token at once, or is refused. A replay's page is paid for in part
    (:meth:`spend`: what it carried, see gateway/bigreads.py ``PageTurn``) after it was
    read, once :meth:`wait` said the bucket had a token: it may leave the bucket below
    zero, by less than a page, and the key's next request waits the longer for it."""

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.per_second = rate.count / rate.per
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)

    def take(self, key: str, *, now: float | None = None) -> int | None:
        now = time.monotonic() if now is None else now
        wait = self.wait(key, now=now)
        if wait is None:
            self.spend(key, 1.0, now=now)
        return wait

    def wait(self, key: str, *, now: float | None = None) -> int | None:
        """None if ``key``'s bucket has a token now (none is taken), else the seconds until
        it has one."""
        now = time.monotonic() if now is None else now
        tokens = self._tokens(key, now)
        if tokens >= 1.0:
            return None
        if key in self.buckets:
            self.buckets[key] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self.per_second))

    def spend(self, key: str, cost: float, *, now: float | None = None) -> None:
        """Take ``cost`` tokens of ``key``'s bucket, even below zero (down to minus one
        bucket at most)."""
        now = time.monotonic() if now is None else now
        tokens = self._tokens(key, now)
        if len(self.buckets) >= MAX_KEYS and key not in self.buckets:
            self._forget_idle(now)
        self.buckets[key] = (max(-float(self.rate.count), tokens - cost), now)

    def _tokens(self, key: str, now: float) -> float:
        tokens, stamp = self.buckets.get(key, (float(self.rate.count), now))
        return min(float(self.rate.count), tokens + (now - stamp) * self.per_second)

    def _forget_idle(self, now: float) -> None:
        full = float(self.rate.count)
        self.buckets = {k: (t, s) for k, (t, s) in self.buckets.items()
                        if t + (now - s) * self.per_second < full}

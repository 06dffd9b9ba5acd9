"""Output pacing per session, so one flooding session cannot delay anyone else's output.

Each session's relay takes tokens (bytes) from its own bucket before passing output on; an
empty bucket makes that relay wait, which backs up into that worker's link and finally blocks
the flooding code's own ``print``. Other sessions' relays are separate tasks with their own
buckets, so their output keeps its usual latency.
"""

from __future__ import annotations

import asyncio
import time


def wait_for_debt(tokens: float, *, rate: float) -> float:
    """Seconds to wait until a bucket ``tokens`` deep (negative: in debt) is back at zero."""
    return max(0.0, -tokens / rate) if rate > 0 else 0.0


class TokenBucket:
    """``rate`` bytes per second sustained, ``burst`` bytes at once; a take larger than the
    bucket is allowed and paid back by waiting (a big image is not refused)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()
        self.waited = 0.0

    async def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= n
        delay = wait_for_debt(self.tokens, rate=self.rate)
        if delay:
            self.waited += delay
            await asyncio.sleep(delay)

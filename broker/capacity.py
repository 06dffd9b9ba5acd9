"""What the broker says when there is no room for a new session.

A request that needs a new session while every live device is full is refused with a 503
"at capacity, retry in N s" and ``retry_after: N`` (the gateway's ``Retry-After``). N is a few
seconds, spread a little so that a refused crowd does not come back all in the same second:
places free as sessions end (idle timeout, restart), and devices report them every second.

A device can still refuse a session the broker placed (a race the broker could not see: it
runs more sessions than its last report said). That refusal arrives as an ``error`` with
ename ``AtCapacity``, ends the request as ``error``, and :func:`explain_refusal` makes its
text say when to run the cell again.
"""

from __future__ import annotations

import random
from typing import Any

#: Seconds a client refused for capacity is told to wait, at least ...
RETRY_AFTER = 5
#: ... plus up to this many more, at random, to spread a crowd's retries.
RETRY_JITTER = 5
#: The ename of a device's refusal to start one more session.
AT_CAPACITY = "AtCapacity"
#: What :func:`explain_refusal`'s hint tells the user to do (and how it knows its own hint).
AGAIN = "run the cell again"


def retry_after(rng: random.Random | None = None) -> int:
    """Seconds to tell a refused client to wait before trying again."""
    return RETRY_AFTER + (rng or random).randint(0, RETRY_JITTER)


def refusal_text(seconds: int) -> str:
    return f"at capacity, retry in {seconds} s"


def explain_refusal(content: dict[str, Any], seconds: int | None = None) -> bool:
    """Make a device's ``AtCapacity`` error (or reply) content say when to retry, in place;
    True if it was one. Text that already says so is left alone."""
    if content.get("ename") != AT_CAPACITY:
        return False
    evalue = str(content.get("evalue", ""))
    if "retry" in evalue.lower() or AGAIN in evalue:  # the device's words, or this hint
        return True
    hint = (f"no room for a new session now; {AGAIN} in "
            f"{seconds if seconds is not None else retry_after()} s")
    content["evalue"] = f"{evalue}; {hint}" if evalue else hint
    traceback = content.get("traceback")
    if isinstance(traceback, list):
        content["traceback"] = [*traceback, f"cellbus: {hint}"]
    return True

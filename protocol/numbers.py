"""argparse types of the numbers options take: counts, byte sizes and seconds.

``type=int`` and ``type=float`` take anything Python parses: ``--max-sessions -3``, ``--prefork
-1``, ``--drain-timeout -5`` and ``--idle-timeout nan`` started a node that then misbehaved
without a word, and ``--feed-hwm -1`` stopped the broker with a traceback from ZeroMQ. These
types refuse such values with one sentence naming what the option takes; through
:func:`protocol.config.parse_args` they check a ``CELLBUS_*`` variable or a ``--config``
file's value as they check a flag's.
"""

from __future__ import annotations

import argparse
import math


def _whole(text: str, least: int) -> int:
    try:
        n = int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number, not {text!r}") from None
    if n < least:
        raise argparse.ArgumentTypeError(f"a whole number, {least} or more, not {n}")
    return n


def _real(text: str, *, zero: bool, unit: str) -> float:
    try:
        x = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of {unit}, not {text!r}") from None
    if not math.isfinite(x) or x < 0 or (x == 0 and not zero):
        least = "0 or more" if zero else "more than 0"
        raise argparse.ArgumentTypeError(f"a number of {unit}, {least}, not {text!r}")
    return x


def count(text: str) -> int:
    """0 or more (a pool size, a cap where 0 means none)."""
    return _whole(text, 0)


def positive_count(text: str) -> int:
    """1 or more (places, bytes of a buffer, a queue's length)."""
    return _whole(text, 1)


def seconds(text: str) -> float:
    """Finite seconds, 0 or more (0: no limit, or at once, as the option says)."""
    return _real(text, zero=True, unit="seconds")


def positive_seconds(text: str) -> float:
    """Finite seconds, more than 0 (a lifetime, a timeout that cannot be off)."""
    return _real(text, zero=False, unit="seconds")


def amount(text: str) -> float:
    """A finite number, 0 or more (CPU cores, 0: no quota)."""
    return _real(text, zero=True, unit="units")


def positive_amount(text: str) -> float:
    """A finite number, more than 0 (a rate)."""
    return _real(text, zero=False, unit="units")


def times(n: int) -> str:
    """``n`` as a count of occurrences in a sentence: "once", "2 times"."""
    return "once" if n == 1 else f"{n} times"

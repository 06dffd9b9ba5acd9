"""Maps that remember their newest entries only, at a constant cost per entry.

A plain ``dict`` used as a first-in-first-out window (``del d[next(iter(d))]``) is a trap in
CPython: a deleted entry leaves its slot behind until the dict is next resized, and ``iter``
walks over every such slot from the start. Each eviction then costs as many steps as there
were evictions since the last resize: in a replay window of 65,536 signatures, up to 48 us
per message instead of 1 us, so a node's cost per message rose for as long as it ran
(bench/RESULTS.md, "The replay window"). :class:`collections.OrderedDict` keeps its own
linked order and drops its oldest entry in constant time.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def forget_oldest(entries: OrderedDict[K, V], keep: int) -> None:
    """Drop ``entries``' oldest items until at most ``keep`` are left."""
    while len(entries) > keep:
        entries.popitem(last=False)

"""One lock per worksheet: requests of a worksheet that change it are handled one at a time
(:class:`broker.intake.Intake`).

A worksheet's lock lives exactly as long as a request holds it or waits for it: the table
keeps it by a weak reference, and each request's ``async with`` keeps it alive. So the table
holds only worksheets in use, however many names clients make up, and is never pruned by
hand: a pruning that kept only locks *held* at that moment forgot one just released whose
next waiter had not resumed yet, and the request after it got a fresh lock and ran beside
that waiter (an evaluate beside a DELETE of the same worksheet's runs, say).
"""

from __future__ import annotations

import asyncio
import weakref

Worksheet = tuple[str, str]


class WorksheetLocks:
    """``locks(worksheet)``: the worksheet's lock (the same one while anyone holds it or
    waits for it; hold it with ``async with``)."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[Worksheet, asyncio.Lock] = (
            weakref.WeakValueDictionary())

    def __call__(self, worksheet: Worksheet) -> asyncio.Lock:
        lock = self._locks.get(worksheet)
        if lock is None:
            lock = self._locks[worksheet] = asyncio.Lock()
        return lock

    def __len__(self) -> int:
        """Worksheets whose lock is held or waited for now."""
        return len(self._locks)

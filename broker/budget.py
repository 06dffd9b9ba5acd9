"""One budget of bytes per user in the store: everything a user makes the broker keep.

``--user-output BYTES`` (:mod:`broker.quotas`) bounds what one user keeps in the store, and
it counts all of it, not only output: the code of each request (stored twice: in the
request message, its ``input`` being derived from it, and in the session's
``execute_input`` that echoes it, which replays need until retention compacts the session),
interact requests and their values, the Jupyter
session facts a first request carries, worksheet layouts, permalinks and Jupyter delivery
positions (see :mod:`broker.store._user_bytes` for what the store counts). The count is
:class:`~broker.outputcap.UserBytes`, the one the output cap uses: read from the store (so it
survives a restart), plus what this broker stored since.

Over the budget, a request that would store more (an evaluate, an interact, a larger
layout, a new permalink or delivery position) is refused with 429, as every per-user quota
is (507 means the store's disk itself is full), with words that name the quota and how to
free space. Nothing already stored is touched; reading, interrupting, restarting, answering
a prompt and deleting (a worksheet's runs, layouts, permalinks) go on working, and output of
runs already accepted keeps only a notice once the budget is spent (:mod:`broker.outputcap`).
A deletion frees its bytes at once (:meth:`StoreBudget.recount`, or the size deleted).
"""

from __future__ import annotations

import logging
from typing import Any, Final

from protocol.packing import packer

from .outputcap import RECOUNT, UserBytes
from .refusal import Refused

#: Seconds a refused client is told to wait: the broker reads each user's bytes from the
#: store again this often, so space that retention freed shows by then.
RETRY_AFTER: Final = int(RECOUNT)

log = logging.getLogger("cellbus.broker")
_pack = packer(use_bin_type=True, datetime=True)


def stored_size(obj: Any) -> int:
    """Bytes of ``obj`` packed as the store packs a message (msgpack); 0 if it cannot be."""
    try:
        return len(_pack(obj))
    except (TypeError, ValueError, OverflowError):  # the store refuses it, and says so
        return 0


def _mib(n: int) -> str:
    return f"{n / 2**20:.3g} MiB"


class StoreBudget:
    """``quota`` bytes per user in the store (0: no limit), counted by ``users``."""

    def __init__(self, quota: int, users: UserBytes) -> None:
        self.quota = quota
        self.users = users

    async def room(self, user: str, size: int, what: str) -> None:
        """Raise :class:`Refused` (429) if ``user`` keeps so much that ``size`` more bytes
        (``what``: the thing they ask to store) would pass the quota."""
        if not self.quota or size <= 0:
            return
        await self.users.refresh(user)
        used = self.users.used(user)
        if used + size <= self.quota:
            return
        log.info("broker refused %s of %s: %d bytes kept, %d more asked, quota %d", what,
                 user, used, size, self.quota)
        raise Refused(429, (
            f"quota: {user} keeps {_mib(used)} in the store (code of runs, its output, "
            f"layouts, permalinks), and this {what} ({_mib(size)}) would pass the most one "
            f"user may keep (the broker's --user-output {_mib(self.quota)}); nothing was "
            "accepted. Reading your worksheets still works. To free space, delete the runs "
            "of worksheets you no longer need (DELETE /home/USER/WORKSHEET), their layouts "
            '(POST {"cells": []} to their /layout) or your permalinks (DELETE /permalink/ID); '
            "output of finished sessions and earlier runs of a cell are removed after the "
            "broker's --retention; or ask the operator for a larger --user-output"),
            retry_after=RETRY_AFTER)

    async def recount(self, user: str) -> None:
        """Read what ``user`` keeps from the store now (after a deletion of theirs: what it
        freed counts at once, not at the next read :data:`RETRY_AFTER` seconds on)."""
        if self.quota:
            await self.users.refresh(user, now=True)

    def add(self, user: str, size: int) -> None:
        """``size`` bytes were stored for ``user`` (negative: removed)."""
        if self.quota and size:
            self.users.add(user, size)

"""Worksheet layouts: ``worksheet_layout_request`` keeps a worksheet's cells in order as its
page saved them, ``worksheet_layout_get_request`` reads them back.

A layout is the worksheet's note about itself, not work: each cell's id, its type (``code``
or ``markdown``) and its text (a code cell's code as last typed, a Markdown cell's source).
It is why a reload, or another browser opening ``/?ws=NAME``, shows the Markdown cells in
their place among the code cells (and a code cell's output hidden, :data:`HIDDEN`, or
cleared, :data:`CLEARED`). The
broker only stores it (one row per worksheet): it is sent to no device and no kernel, so
Markdown never runs anywhere, and it opens no session. A save
names the revision its page loaded (``base``; :func:`revision`, which a read and a save
answer): if another page saved since, it is refused with 409 rather than put over cells it
never saw (a stale tab lost another's Markdown cells); a save that names none replaces the
layout, whatever it is. A code cell's output still comes from its requests, as before. A
read also names the cells that have runs (``ran``), so the page asks the store for those
cells' output only: a cell that never ran answers 404, which a browser shows as an error.

Rows are kept for good (retention is for output), so each user a token names may keep a
layout for ``--user-layouts`` worksheets (:mod:`broker.quotas`): a save for one more is
refused with 429, while replacing a stored one always works, and a layout with no cells is
not stored but deletes the worksheet's row, which frees a place. A layout's bytes count
against its user's ``--user-output`` (:mod:`broker.budget`): a save that would grow them past
it is refused with 429 too, one that shrinks them never, and deleting one frees them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from typing import Any

from protocol.address import MAX_NAME, is_name
from protocol.counts import KEEPALIVE_CELL

from .quotas import Quotas
from .refusal import Address, Refused, Reply
from .store import Store

#: Cell types a layout may name.
TYPES = ("code", "markdown")
#: A cell's key, kept only when true, for an output its page hid (Escape then O): a reload
#: and another tab hide it again, and the notebook's download says so (broker/notebook.py).
#: Absent otherwise, so the revisions of layouts saved before it are the same.
HIDDEN = "outputs_hidden"
#: A cell's key, kept only when given, naming the run (its request's msg_id) whose output its
#: page cleared (Clear output): a reload and another tab show that run's output no more and
#: the notebook's download leaves it out, as Jupyter keeps a cleared output cleared; the
#: cell's next run (another id) shows as ever. A run's id, not a flag, so that no page has
#: to save again when a run starts (maybe in another tab, or over the HTTP API). The store
#: keeps the output (exactly once; its permalink and /update still have it). Absent
#: otherwise, so the revisions of layouts saved before it are the same.
CLEARED = "outputs_cleared"
#: Cells one layout may hold.
MAX_CELLS = 1000
#: Bytes of JSON one layout may take in the store.
MAX_BYTES = 1 * 2**20
#: Hex digits of a layout's revision.
REVISION_LENGTH = 16
#: Cells with runs a read names at most; past it ``ran`` is null (the page asks each cell).
MAX_RAN = 4 * MAX_CELLS
SHAPE = '{"cells": [{"id": "1", "type": "code" or "markdown", "code": "..."}, ...]}'


async def cells_with_runs(store: Store, user: str, worksheet: str) -> set[str]:
    """The worksheet's cells that have runs: the page's Keep runs under no cell of it."""
    return await store.worksheet_cells(user, worksheet) - {KEEPALIVE_CELL}


def revision(cells: list[dict[str, Any]] | None) -> str | None:
    """What a page names the layout it loaded by, to save over that one only: a digest of
    the cells (None: the worksheet has none)."""
    if cells is None:
        return None
    digest = hashlib.sha256(json.dumps(cells, sort_keys=True).encode()).hexdigest()
    return digest[:REVISION_LENGTH]


def checked_cells(value: Any) -> list[dict[str, Any]]:
    """The cells of a layout with only the keys it keeps; :class:`Refused` (400) saying what
    is wrong with anything else, 413 over :data:`MAX_BYTES`."""
    if not isinstance(value, list) or len(value) > MAX_CELLS:
        raise Refused(400, f"a layout is a list of at most {MAX_CELLS} cells: {SHAPE}")
    cells = []
    for cell in value:
        if not (isinstance(cell, dict) and is_name(cell.get("id"))
                and cell.get("type", "code") in TYPES and isinstance(cell.get("code", ""), str)):
            raise Refused(400, f"each cell of a layout needs an id, a type and its code: {SHAPE}")
        hidden = cell.get("outputs_hidden", False)
        if not isinstance(hidden, bool):
            raise Refused(400, "a cell's outputs_hidden, if given, is true or false")
        cleared = cell.get(CLEARED)
        if cleared is not None and not is_name(cleared):
            raise Refused(400, f"a cell's {CLEARED}, if given, is the id of the run whose "
                               f"output was cleared (1 to {MAX_NAME} characters)")
        cells.append({"id": cell["id"], "type": cell.get("type", "code"),
                      "code": cell.get("code", ""), **({HIDDEN: True} if hidden else {}),
                      **({CLEARED: cleared} if cleared is not None else {})})
    if len(json.dumps(cells).encode()) > MAX_BYTES:
        raise Refused(413, f"a layout holds at most {MAX_BYTES} bytes")
    return cells


class Layouts:
    """The broker's two layout handlers (wired in :class:`broker.intake.Intake`)."""

    def __init__(self, store: Store, quotas: Quotas) -> None:
        self.store, self.quotas = store, quotas
        #: One lock per user saving now: the intake's lock is per worksheet, and two saves
        #: for new worksheets must not both see the last free place. Gone once unused.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = \
            weakref.WeakValueDictionary()

    async def put(self, msg: Any, address: Address) -> Reply:
        cells = checked_cells(msg["content"].get("cells"))
        base = msg["content"].get("base")
        if base is not None and not isinstance(base, str):
            raise Refused(400, "base must be the revision the page loaded (a string), or null")
        user, worksheet = address[0], address[1]
        budget = self.quotas.budget
        given = "base" in msg["content"]
        current = await self.store.get_layout(user, worksheet) if given or budget.quota \
            else None
        if given and base != revision(current):  # (read under the worksheet's lock)
            if current is None and base is not None:
                raise Refused(409, f"worksheet {worksheet} was deleted (Delete worksheet in "
                                   "another tab, or a DELETE of it) since this page loaded "
                                   "it; nothing was saved")
            raise Refused(409, f"the cells of worksheet {worksheet} were changed elsewhere (in "
                               "another tab or browser) since this page loaded them; reload "
                               "to see them")
        stored = len(json.dumps(current).encode()) if budget.quota and current else 0
        grow = len(json.dumps(cells).encode()) - stored
        if not cells:  # nothing to keep: the row goes, and its place in the quotas
            if await self.store.delete_layout(user, worksheet):
                budget.add(user, -stored)
            return {"cells": 0, "revision": None}, []
        await budget.room(user, grow, "layout")  # a layout that shrinks is always saved
        facts = msg["metadata"].get("cellbus")
        limit = self.quotas.config.user_layouts
        if not (limit and isinstance(facts, dict) and facts.get("auth") == "token"):
            await self.store.put_layout(user, worksheet, cells)  # counted for token users only
            budget.add(user, grow)
            return {"cells": len(cells), "revision": revision(cells)}, []
        lock = self._locks.get(user)
        if lock is None:
            lock = self._locks[user] = asyncio.Lock()
        async with lock:
            if (await self.store.count_layouts(user) >= limit
                    and await self.store.get_layout(user, worksheet) is None):
                raise Refused(429, f"quota: {user} has layouts of {limit} worksheets in the "
                                   "store, the most one user may keep (the broker's "
                                   f"--user-layouts {limit}); to free a place, delete every "
                                   "cell of a worksheet you no longer need (or POST "
                                   '{"cells": []} to its /layout)')
            await self.store.put_layout(user, worksheet, cells)
        budget.add(user, grow)
        return {"cells": len(cells), "revision": revision(cells)}, []

    async def get(self, msg: Any, address: Address) -> Reply:
        cells = await self.store.get_layout(address[0], address[1])
        ran = await cells_with_runs(self.store, address[0], address[1])
        return {"cells": cells, "revision": revision(cells),
                "ran": sorted(ran) if len(ran) <= MAX_RAN else None}, []

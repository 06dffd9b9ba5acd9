"""The broker's cell views (broker/cells.py) against a real SQLite store: a view rebuilt from
the store while the request's status changes ends with the new status."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from broker.cells import Cells
from broker.store import DONE, WORKING, sqlite_url
from broker.store.sqlite import SQLiteStore

from test_store_contract import execute, jmsg


class PausedStore(SQLiteStore):
    """A real SQLite store whose ``messages`` waits for ``go``: a view held mid-rebuild."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reading, self.go = asyncio.Event(), asyncio.Event()

    async def messages(self, session: str, **kwargs: Any) -> list[tuple[int, Any]]:
        self.reading.set()
        await self.go.wait()
        return await super().messages(session, **kwargs)


async def test_status_stored_while_a_view_is_rebuilt_is_not_lost(tmp_path: Path) -> None:
    """Tests that output and a status stored while a cell's view is being rebuilt from the
    store (as after a broker restart) both end up in the view: the status used to stay the
    one read before the rebuild, so a finished cell showed working forever."""
    async with PausedStore(sqlite_url(tmp_path / "cells.db")) as store:
        req = await store.add_request(execute())
        await store.update_request(req.msg_id, WORKING)
        cells = Cells(store)
        rebuild = asyncio.create_task(cells.for_cell(req.user, req.worksheet, req.cell_id))
        await asyncio.wait_for(store.reading.wait(), 5)
        idle = jmsg("status", parent=req.msg_id, content={"execution_state": "idle"})
        seqs, [done] = await store.append_and_update([("s1", idle)], [(req.msg_id, DONE, None)])
        cells.apply(req.msg_id, seqs[0], idle)  # what the broker does once they are stored
        assert done is not None
        cells.refresh(done)
        store.go.set()
        view = await asyncio.wait_for(rebuild, 5)
        assert view is not None and view.document()["status"] == DONE
        assert view.document()["seq"] == seqs[0]
        again = await cells.for_cell(req.user, req.worksheet, req.cell_id)
        assert again is view

"""An interact run's output that is stored while its cell's view is being folded from the
store (broker/cells.py's rebuild window: after a broker restart, or once the view left the
cache) against a real SQLite store: every line of the run shows once, in order, in the
interact's block, and a run that ended in the window is not kept as running."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from broker.cells import Cells
from broker.interacts import Interacts
from broker.store import DONE, WORKING, Request, sqlite_url
from broker.store.sqlite import SQLiteStore

from test_store_contract import execute, interact, jmsg

pytestmark = pytest.mark.timeout(30)

IID = "i" * 32


class HeldStore(SQLiteStore):
    """A real SQLite store whose ``messages`` read number ``hold`` (1: the cell's own
    messages, 2: the session's, where its interact runs are) waits for ``go``."""

    def __init__(self, url: str, hold: int) -> None:
        super().__init__(url)
        self.hold, self.calls = hold, 0
        self.reading, self.go = asyncio.Event(), asyncio.Event()

    async def messages(self, session: str, **kwargs: Any) -> list[tuple[int, Any]]:
        self.calls += 1
        if self.calls == self.hold:
            self.reading.set()
            await self.go.wait()
        return await super().messages(session, **kwargs)


def run_msg(run: Request, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    """Output of the interact run ``run``, as the device stamps it."""
    msg = jmsg(msg_type, parent=run.msg_id, content=content)
    msg["parent_header"]["msg_type"] = "interact_request"
    msg["metadata"] = {"cellbus": {"user": run.user, "worksheet": run.worksheet,
                                   "cell_id": run.cell_id, "interact_id": IID}}
    return msg


def line(run: Request, text: str) -> dict[str, Any]:
    return run_msg(run, "stream", {"name": "stdout", "text": text})


async def stored(store: SQLiteStore, *msgs: dict[str, Any]) -> list[int]:
    seqs, _ = await store.append_and_update([("s1", m) for m in msgs], [])
    return list(seqs)


async def a_cell_with_a_run(store: SQLiteStore) -> tuple[Request, Request]:
    """A cell whose run showed an interact (done), and a run of it that printed '12'."""
    cell = await store.add_request(execute())
    await store.update_request(cell.msg_id, WORKING)
    start = jmsg("interact_start", parent=cell.msg_id,
                 content={"interact_id": IID, "controls": {}, "layout": []})
    end = jmsg("interact_end", parent=cell.msg_id, content={"interact_id": IID})
    idle = jmsg("status", parent=cell.msg_id, content={"execution_state": "idle"})
    await store.append_and_update([("s1", m) for m in (start, end, idle)],
                                  [(cell.msg_id, DONE, None)])
    run = await store.add_request(interact(IID, 1))
    await stored(store, run_msg(run, "status", {"execution_state": "busy"}), line(run, "12\n"))
    return cell, run


def shown(view: Any) -> str:
    [block] = [b for b in view.document()["output"].values() if b["type"] == "interact"]
    return "".join(b.get("content", "") for b in block["output"].values())


def parts(store: SQLiteStore) -> tuple[Cells, Interacts]:
    """A new broker's cells and interacts (only their fold is used here)."""
    cells = Cells(store)
    return cells, Interacts(wire=None, store=store, cells=cells,  # type: ignore[arg-type]
                            sessions=None, dispatch=None)  # type: ignore[arg-type]


async def live(store: SQLiteStore, interacts: Interacts, *msgs: dict[str, Any]) -> None:
    """Store ``msgs`` and fold them as broker/output.py does once they are stored."""
    for seq, msg in zip(await stored(store, *msgs), msgs):
        assert interacts.apply(msg["parent_header"]["msg_id"], seq, msg)


@pytest.mark.parametrize("hold", [1, 2], ids=["own-read", "runs-read"])
async def test_a_line_stored_during_the_rebuild_joins_the_lines_before_it(
        tmp_path: Path, hold: int) -> None:
    """Tests that a run begun by a broker that died, whose next line is stored while the new
    broker folds the cell's view from the store, shows both lines (before: the line that came
    live made a run of its own, and the fold then skipped every stored line older than it:
    the view showed '112' alone)."""
    async with HeldStore(sqlite_url(tmp_path / "cells.db"), hold) as store:
        cell, run = await a_cell_with_a_run(store)
        cells, interacts = parts(store)
        rebuild = asyncio.create_task(cells.for_cell(cell.user, cell.worksheet, cell.cell_id))
        await asyncio.wait_for(store.reading.wait(), 5)
        await live(store, interacts, line(run, "112\n"))
        store.go.set()
        view = await asyncio.wait_for(rebuild, 5)
        assert view is not None and shown(view) == "12\n112\n"
        await live(store, interacts, line(run, "212\n"))  # and what comes after shows on
        assert shown(view) == "12\n112\n212\n"
        assert shown(await cells.for_cell(cell.user, cell.worksheet, cell.cell_id)) == \
            "12\n112\n212\n"


@pytest.mark.parametrize("hold", [1, 2], ids=["own-read", "runs-read"])
async def test_a_run_that_ends_during_the_rebuild_shows_whole_and_is_let_go(
        tmp_path: Path, hold: int) -> None:
    """Tests that a run whose last line and idle are stored during the rebuild shows every
    line once, and is not kept among the runs still going (before: the fold put it back
    there, where it stayed for good)."""
    async with HeldStore(sqlite_url(tmp_path / "cells.db"), hold) as store:
        cell, run = await a_cell_with_a_run(store)
        cells, interacts = parts(store)
        rebuild = asyncio.create_task(cells.for_cell(cell.user, cell.worksheet, cell.cell_id))
        await asyncio.wait_for(store.reading.wait(), 5)
        await live(store, interacts, line(run, "112\n"),
                   run_msg(run, "status", {"execution_state": "idle"}))
        store.go.set()
        view = await asyncio.wait_for(rebuild, 5)
        assert view is not None and shown(view) == "12\n112\n"
        assert interacts.runs == {}


async def test_a_run_this_broker_sent_shows_once_when_its_view_is_folded_again(
        tmp_path: Path) -> None:
    """Tests a run this broker followed from its start, whose cell's view left the cache
    and is folded again while the run prints: each line once, in order."""
    async with HeldStore(sqlite_url(tmp_path / "cells.db"), 4) as store:  # the second fold's
        cell, run = await a_cell_with_a_run(store)
        cells, interacts = parts(store)
        first = await cells.for_cell(cell.user, cell.worksheet, cell.cell_id)
        assert first is not None and shown(first) == "12\n"
        await live(store, interacts, line(run, "112\n"))
        assert shown(first) == "12\n112\n"
        cells.views.clear()  # evicted
        cells.bytes = 0
        rebuild = asyncio.create_task(cells.for_cell(cell.user, cell.worksheet, cell.cell_id))
        await asyncio.wait_for(store.reading.wait(), 5)
        await live(store, interacts, line(run, "212\n"))
        store.go.set()
        view = await asyncio.wait_for(rebuild, 5)
        assert view is not None and shown(view) == "12\n112\n212\n"
        await live(store, interacts, line(run, "312\n"))
        assert shown(view) == "12\n112\n212\n312\n"

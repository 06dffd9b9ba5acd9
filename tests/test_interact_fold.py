"""A cell's view folded from the store (a broker's first look at a cell after a restart, or
once the view left its cache) shows each interact's last run, and reads only that: not every
message the session stored after the cell, which grows with every cell run after it.

A real SQLite store; the runs' output is stored as a worker's would be (busy, output, reply,
idle), so what is folded is what a broker rebuilt before (tests/test_interact_restart.py
checks the same through the whole chain)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from broker.cells import Cells
from broker.store import (EXECUTE_REQUEST, INTERACT_REQUEST, SUPERSEDED, Request,
                          open_store)
from broker.store.base import Store

SESSION = "s1"


class CountingStore:
    """The store, counting the messages its reads return (the cost this file is about)."""

    def __init__(self, store: Store) -> None:
        self.store, self.read = store, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def messages(self, session: str, **kwargs: Any) -> list[tuple[int, Any]]:
        got = await self.store.messages(session, **kwargs)
        self.read += len(got)
        return got


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(f"sqlite:///{tmp_path}/store.db") as opened:
        yield opened


def message(parent: Request, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    msg_id = uuid.uuid4().hex
    facts = {"cellbus": {"interact_id": parent.interact_id, "user": parent.user,
                         "worksheet": parent.worksheet, "cell_id": parent.cell_id}
             } if parent.interact_id else {}
    return {"header": {"msg_id": msg_id, "msg_type": msg_type}, "msg_id": msg_id,
            "msg_type": msg_type, "metadata": facts, "content": content,
            "parent_header": {"msg_id": parent.msg_id, "msg_type": parent.msg_type}}


async def run(store: Store, cell: str, *output: tuple[str, dict[str, Any]],
              interact: str | None = None, ends: bool = True, sent: bool = True) -> Request:
    """A request of ``cell`` (an execute, or a run of ``interact``) and its stored output
    (none if it was not ``sent``; no reply or idle if it did not ``end``)."""
    msg_id = uuid.uuid4().hex
    kind = EXECUTE_REQUEST if interact is None else INTERACT_REQUEST
    msg = {"header": {"msg_id": msg_id, "msg_type": kind}, "msg_id": msg_id,
           "msg_type": kind, "parent_header": {}, "metadata": {}, "content": {}}
    request = await store.add_request(Request(msg_id, SESSION, "ann", "ws", cell, kind, "",
                                              msg, interact_id=interact, state=0))
    reply = "execute_reply" if interact is None else "interact_reply"
    stored = [message(request, "status", {"execution_state": "busy"}),
              *(message(request, kind, content) for kind, content in output)]
    if ends:
        stored += [message(request, reply, {"status": "ok"}),
                   message(request, "status", {"execution_state": "idle"})]
    if sent:
        await store.append_messages([(SESSION, m) for m in stored])
    return request


def printed(text: str) -> tuple[str, dict[str, Any]]:
    return "stream", {"name": "stdout", "text": text}


def interact_start(interact_id: str) -> tuple[str, dict[str, Any]]:
    return "interact_start", {"interact_id": interact_id, "controls": {}}


END = ("interact_end", {})


def texts(blocks: dict[str, Any]) -> list[str]:
    """The text of every block, nested output included, in order."""
    out: list[str] = []
    for block in blocks.values():
        if block["type"] == "interact":
            out += [f"<{block['interact_id']}>", *texts(block["output"]), "</>"]
        elif block["type"] == "text":
            out.append(block["content"])
    return out


async def folded(store: Store, request: Request) -> tuple[list[str], int, Cells]:
    """The cell's view folded from ``store`` by a new broker's Cells: its texts, and how
    many stored messages the fold read."""
    counting = CountingStore(store)
    cells = Cells(counting)  # type: ignore[arg-type]
    view = await cells.view(request)
    return texts(view.output.blocks()), counting.read, cells


async def test_the_fold_reads_the_last_run_not_the_cells_run_after(store: Store) -> None:
    """Tests that a slider's cell, with 3 runs and then 300 other cells run in its session,
    folds from its own output and its last run only (before: every message stored after the
    cell, 1,200 here, and seconds at 10,000 cells in bench/history_reads.py)."""
    cell = await run(store, "slider", interact_start("i"), END)
    for n in (1, 2, 3):
        await run(store, "slider", printed(f"{n}\n"), interact="i")
    for n in range(300):
        await run(store, f"other{n}", printed(f"{n}\n"))
    shown, read, _ = await folded(store, cell)
    assert shown == ["<i>", "3\n", "</>"]
    assert read <= 10, f"the fold read {read} stored messages"


async def test_a_run_still_going_folds_on_and_the_last_shown_stays(store: Store) -> None:
    """Tests that a run that began and showed nothing yet (its broker died) leaves the
    run before it shown, and is kept to fold its output still to come; a run superseded
    before it was sent (no output) is passed over."""
    cell = await run(store, "slider", interact_start("i"), END)
    await run(store, "slider", printed("1\n"), interact="i")
    await run(store, "slider", printed("2\n"), interact="i")
    skipped = await run(store, "slider", interact="i", sent=False)
    await store.update_request(skipped.msg_id, SUPERSEDED)
    going = await run(store, "slider", interact="i", ends=False)
    shown, read, cells = await folded(store, cell)
    assert shown == ["<i>", "2\n", "</>"]
    assert set(cells.runs) == {going.msg_id}
    assert read <= 10


async def test_an_interact_in_a_runs_output_shows_its_own_last_run(store: Store) -> None:
    """Tests that an interact made by an interact's run (nested) shows its own last run
    inside the outer one's last run, and that an inner interact of an earlier outer run, which
    the last outer run replaced, shows nowhere."""
    cell = await run(store, "slider", interact_start("outer"), END)
    await run(store, "slider", interact_start("old-inner"), END, interact="outer")
    await run(store, "slider", printed("old\n"), interact="old-inner")
    await run(store, "slider", printed("b\n"), interact_start("inner"), END, interact="outer")
    for n in (1, 2):
        await run(store, "slider", printed(f"inner {n}\n"), interact="inner")
    shown, _, _ = await folded(store, cell)
    assert shown == ["<outer>", "b\n", "<inner>", "inner 2\n", "</>", "</>"]

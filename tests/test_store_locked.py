"""Exactly once while another process holds the SQLite store's write lock (a backup, an
operator's ``sqlite3`` shell, a second broker started by mistake) for longer than the store's
busy timeout and the devices' heartbeat liveness. The broker cannot write meanwhile; the
devices keep their output; nothing may be lost, repeated or reordered, and no live device may
be taken for lost because the broker itself did not read its heartbeats."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from broker.store._sqlite_file import BUSY_TIMEOUT
from harness import Chain, until
from test_chaos import CODE, LINES, accept, problems

WORKSHEETS = 4
#: Past the busy timeout (a write waits that long, then fails) and the 3 s liveness.
HOLD = BUSY_TIMEOUT + 1.5


def test_a_store_locked_by_another_process_loses_nothing_and_loses_no_device(
        key_file: Path, tmp_path: Path, nodes: list) -> None:
    """Tests that cells streaming while another process holds the store's write lock for
    HOLD seconds all end done with each line once, in order, and that the broker takes its
    live device for lost at no time (before: "device device0 is lost (silent for 3 s)", its
    running cells ended with DeviceLost and their workers were ended)."""
    db = tmp_path / "cellbus.db"
    chain = Chain(key_file, f"sqlite:///{db}", nodes)
    chain.start_broker()
    chain.start_device("--max-sessions", str(WORKSHEETS + 2))
    chain.start_gateway()
    cells = {}
    for w in range(WORKSHEETS):
        cell, tag = f"u{w}/ws/1", f"w{w}"
        accept(chain, cell, CODE.format(lines=LINES, tag=tag))
        cells[cell] = tag
    broker = chain.broker
    assert broker is not None
    broker.wait_for_log(r"store: SQLite file")
    until(lambda: chain.update("u0/ws/1")[1]["status"] == "working",  # the lock meets
          "the first cell to run")                                      # running cells
    lock = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:
        lock.execute("BEGIN IMMEDIATE")  # every writer but this one waits, then fails
        broker.wait_for_log(r"the store cannot write", timeout=30)
        time.sleep(HOLD - BUSY_TIMEOUT)  # the lock's length is the fault itself
    finally:
        lock.execute("COMMIT")
        lock.close()
    found = []
    for cell, tag in cells.items():
        found += problems(cell, chain.wait_done(cell, timeout=60), tag)
    assert not found, "\n".join(found)
    assert "is lost" not in broker.log, broker.log

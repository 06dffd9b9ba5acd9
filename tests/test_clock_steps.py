"""The wall clock may step (NTP, a VM restored, an operator's ``date``): what orders events
is never ``time.time()``. Timeouts, liveness, backoff and pacing use the monotonic clock (a
scan of the code below), and what the store orders requests by is their insertion, not their
``created`` stamp: compaction keeps the interact run a cell shows even when the clock went
back between the cell's run and the interact's (before: a run stamped earlier than its cell
was dropped as older, and the cell's slider output went back to its default)."""

from __future__ import annotations

import re
from pathlib import Path

from broker.store import DONE, WORKING, sqlite_url
from broker.store.compaction import kept_requests
from broker.store.sqlite import SQLiteStore

from test_store_contract import execute, interact

ROOT = Path(__file__).resolve().parent.parent

#: Where ``time.time()`` is right: a stamp stored or shown (a date, when a record was made,
#: a retention cutoff that is a wall-clock age by definition), never a duration measured.
WALL_CLOCK = {
    "protocol/wire.py",  # a message's header date
    "broker/users.py", "broker/intake.py", "broker/control.py", "broker/permalinks.py",
    "broker/node.py",  # records' created / last_activity / last_heartbeat stamps
    "broker/retention.py",  # compact what finished more than --retention ago
    "broker/store/_layout_rows.py", "broker/store/_mongo_tx.py",
    "broker/store/_sqlite_rows.py", "broker/store/mongodb.py", "broker/store/sqlite.py",
    "broker/store/_mongo_interacts.py",  # a superseded request's finished stamp
    "broker/store/_sqlite_restore.py",  # a restored store's seq floor: seconds since 1970
}


def test_only_stamps_read_the_wall_clock() -> None:
    """Tests that every ``time.time()`` in the nodes is in a file known to use it for a
    stamp only: a new one for a timeout must use ``time.monotonic()``."""
    found = set()
    for package in ("protocol", "broker", "device", "gateway", "session", "cellbus"):
        for path in (ROOT / package).rglob("*.py"):
            code = [line.split("#")[0] for line in path.read_text().splitlines()]
            if any(re.search(r"(?<!`)\btime\.time\(\)(?!`)", line) for line in code):
                found.add(str(path.relative_to(ROOT)))
    assert found <= WALL_CLOCK, sorted(found - WALL_CLOCK)


async def test_compaction_keeps_the_run_shown_when_the_clock_went_back(tmp_path: Path) -> None:
    async with SQLiteStore(sqlite_url(tmp_path / "clock.db")) as store:
        cell = execute()
        cell.created = 2_000_000_000.0
        cell = await store.add_request(cell)
        await store.update_request(cell.msg_id, WORKING)
        await store.update_request(cell.msg_id, DONE)
        run = interact("i" * 32, 1)
        run.created = cell.created - 3600  # the clock stepped back an hour meanwhile
        run = await store.add_request(run)
        await store.update_request(run.msg_id, WORKING)
        await store.update_request(run.msg_id, DONE)
        kept = await kept_requests(store, await store.session_requests(cell.session))
        assert kept == {cell.msg_id, run.msg_id}

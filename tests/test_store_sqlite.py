"""SQLite-only behaviour of the store: WAL, group commit, several writers, URLs, crashes."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import stat
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from broker.store import (DuplicateRequest, SessionRecord, StoreError, StoreFull,
                          UnknownStore, default_sqlite_path, default_sqlite_url, open_store,
                          sqlite_url)
from broker.store.sqlite import SQLiteStore

from test_store_contract import execute, jmsg

pytestmark = pytest.mark.timeout(20)
ROOT = Path(__file__).resolve().parent.parent

# A second process appending to session "s": prints "ready", then each seq it was given.
WRITER_SCRIPT = """
import asyncio, sys
from broker.store import open_store
async def main(url, n):
    async with open_store(url) as store:
        print("ready", flush=True)
        for i in range(n):
            msg = {"header": {"msg_type": "stream"}, "content": {"who": "child", "i": i}}
            [seq] = await store.append_messages([("s", msg)])
            print(seq, flush=True)
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


@pytest.fixture
def url(tmp_path: Path) -> str:
    """The URL of a fresh SQLite store file."""
    return sqlite_url(tmp_path / "cellbus.db")


@pytest.fixture
async def store(url: str) -> AsyncIterator[SQLiteStore]:
    """An open SQLite store with the default batch size."""
    s = SQLiteStore(url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


class Blocker:
    """Holds the writer thread inside a transaction until released, so writes pile up."""

    def __init__(self, store: SQLiteStore) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        assert store._writer is not None
        self.future = store._writer.submit(self._op)

    def _op(self, conn: sqlite3.Connection) -> None:
        self.started.set()
        self.release.wait(10)

    async def __aenter__(self) -> Blocker:
        for _ in range(1000):
            if self.started.is_set():
                return self
            await asyncio.sleep(0.005)
        raise AssertionError("the writer thread never started the blocking op")

    async def __aexit__(self, *exc: Any) -> None:
        self.release.set()
        await self.future


async def start_child(url: str, n: int) -> asyncio.subprocess.Process:
    """A second process writing ``n`` messages to session "s" of ``url``, once it is ready."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER_SCRIPT, url, str(n), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 10) == b"ready\n"
    return proc


async def test_wal_and_synchronous_normal(store: SQLiteStore, url: str) -> None:
    """Tests that the file is in WAL mode and the writer commits with synchronous=NORMAL."""
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert await store._write(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == 1
    assert str(store.path) in store.describe() and "WAL" in store.describe()
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600


def query_plan(path: Path, sql: str, *args: Any) -> str:
    with sqlite3.connect(path) as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))
    conn.close()
    return plan


async def test_what_is_asked_often_is_read_from_indexes(url: str) -> None:
    """What runs per request or per client poll reads index entries of its own, never every
    request a session or a cell ran nor every session: a session's unfinished requests
    (each Jupyter kernel listing), a cell's latest run (each /update; past its interact
    runs), the open sessions. A file made before these indexes gets them when opened, and
    loses those they replaced."""
    async with open_store(url) as store:
        assert isinstance(store, SQLiteStore)
        await store.add_request(execute("1"))
        path = store.path
    with sqlite3.connect(path) as conn:  # as a file of the code before
        conn.execute("DROP INDEX requests_session")
        conn.execute("DROP INDEX requests_cell_kind")
        conn.execute("DROP INDEX sessions_state")
        conn.execute("CREATE INDEX requests_interact ON requests (session, interact_id, status)")
        conn.execute("CREATE INDEX requests_cell ON requests (user, worksheet, cell_id, id)")
    conn.close()
    async with open_store(url) as store:
        assert [r.cell_id for r in await store.unfinished_requests("s1")] == ["1"]
    unfinished = query_plan(path, "SELECT id FROM requests WHERE session = ? AND status IN "
                            "(?, ?) ORDER BY id", "s1", "needs_work", "working")
    assert "INDEX requests_session" in unfinished, unfinished
    latest = query_plan(path, "SELECT id FROM requests WHERE user = ? AND worksheet = ? AND "
                        "cell_id = ? AND msg_type = ? ORDER BY id DESC LIMIT 1",
                        "ann", "ws", "1", "execute_request")
    assert "requests_cell_kind" in latest and "msg_type=?" in latest, latest
    open_ones = query_plan(path, "SELECT session FROM sessions WHERE state = ?", "open")
    assert "INDEX sessions_state" in open_ones, open_ones
    with sqlite3.connect(path) as conn:
        indexes = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'requests'")}
    conn.close()
    assert {"requests_session", "requests_cell_kind"} <= indexes, indexes
    assert not {"requests_interact", "requests_cell"} & indexes, indexes


async def test_deleting_a_worksheet_reads_only_indexes(url: str) -> None:
    """Every statement that deleting a worksheet's runs makes (broker/deletion.py) searches
    an index by the worksheet or its sessions, the marks of its sessions (``deleting``,
    then closed) included: none scans a whole table, however many requests, messages and
    sessions other worksheets have."""
    from broker.store._worksheet_rows import (deleted_op, delete_messages_op,
                                              delete_worksheet_op)

    async with open_store(url) as store:
        assert isinstance(store, SQLiteStore)
        await store.put_session(SessionRecord("s1", "ann", "ws", None, "open", 1.0, 1.0))
        request = await store.add_request(execute("1"))
        for status in ("working", "done"):
            await store.update_request(request.msg_id, status)
        await store.append_messages([("s1", jmsg("stream", parent=request.msg_id))])
        path = store.path
    statements: list[str] = []
    with sqlite3.connect(path) as conn:
        conn.set_trace_callback(statements.append)
        first = delete_worksheet_op("ann", "ws")(conn)
        messages = delete_messages_op("s1", 1)(conn) + delete_messages_op("s1", 1)(conn)
        deleted_op("s1")(conn)
        conn.rollback()
    conn.close()
    assert first is not None and first[0].requests == 1 and first[1] == ["s1"], first
    assert messages == 1
    statements = [s for s in statements
                  if s.lstrip().upper().startswith(("SELECT", "DELETE", "UPDATE"))]
    assert len(statements) == 6 + 2 + 2 + 1, statements
    for sql in statements:
        plan = query_plan(path, sql)
        assert "SCAN" not in plan and "SEARCH" in plan, (sql, plan)


async def test_group_commit_batches(store: SQLiteStore) -> None:
    """Tests that 500 concurrent appends take far fewer than 500 commits."""
    before = store.stats
    seqs = await asyncio.gather(*(store.append_messages([("s", jmsg("stream"))])
                                  for _ in range(500)))
    assert sorted(s for [s] in seqs) == list(range(1, 501))
    after = store.stats
    assert after.operations - before.operations == 500
    assert after.commits - before.commits < 500
    assert after.largest_batch > 1


async def test_batch_with_failures_is_one_commit(store: SQLiteStore) -> None:
    """Tests that ops failing inside one transaction fail alone and the rest commit once."""
    existing = await store.add_request(execute("1"))
    async with Blocker(store):
        before = store.stats
        tasks = [asyncio.ensure_future(c) for c in (
            store.append_messages([("s", jmsg("stream"))]),
            store.add_request(execute("2", code="dup")),
            store.add_request(existing),
            store.append_messages([("s", jmsg("stream")), ("t", jmsg("stream"))]),
        )]
        await asyncio.sleep(0.05)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == [1] and results[3] == [2, 1]
    assert isinstance(results[1], type(existing)) and isinstance(results[2], DuplicateRequest)
    assert store.stats.commits - before.commits == 2  # the blocker's batch, then all four
    assert store.stats.largest_batch == 4
    assert store.stats.failed - before.failed == 1


async def test_failed_op_rolls_back_its_own_writes(store: SQLiteStore) -> None:
    """Tests that a failing op's partial writes are undone (savepoint), not its batch's."""
    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO seqs (session, last) VALUES ('ghost', 7)")
        raise RuntimeError("boom")

    assert store._writer is not None
    async with Blocker(store):
        bad = store._writer.submit(half_then_fail)
        good = asyncio.ensure_future(store.append_messages([("s", jmsg("stream"))]))
        await asyncio.sleep(0.05)
    with pytest.raises(RuntimeError, match="boom"):
        await bad
    assert await good == [1]
    assert await store.last_seq("ghost") == 0 and await store.last_seq("s") == 1


async def test_failed_op_alone_leaves_nothing(store: SQLiteStore) -> None:
    """An op alone in its transaction has no savepoint: its failure rolls back the whole
    transaction, which held only its own writes; the next write goes through."""
    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO seqs (session, last) VALUES ('ghost', 7)")
        raise RuntimeError("boom")

    assert store._writer is not None
    with pytest.raises(RuntimeError, match="boom"):
        await store._writer.submit(half_then_fail)
    assert await store.last_seq("ghost") == 0
    assert await store.append_messages([("s", jmsg("stream"))]) == [1]
    assert store.stats.failed == 1


async def test_store_full(url: str) -> None:
    """Tests that writes beyond max_pending raise StoreFull instead of queueing forever."""
    async with SQLiteStore(url, max_pending=3) as store:
        async with Blocker(store):
            queued = [asyncio.ensure_future(store.append_messages([("s", jmsg("stream"))]))
                      for _ in range(3)]
            await asyncio.sleep(0.02)
            with pytest.raises(StoreFull, match="max_pending=3"):
                await store.append_messages([("s", jmsg("stream"))])
        assert sorted([s for [s] in await asyncio.gather(*queued)]) == [1, 2, 3]


async def test_close_drains_queued_writes(url: str) -> None:
    """Tests that close() commits every write already queued before it returns."""
    store = SQLiteStore(url, max_batch=16)
    await store.open()
    tasks = [asyncio.ensure_future(store.append_messages([("s", jmsg("stream"))]))
             for _ in range(200)]
    await asyncio.sleep(0)  # every task has queued its write
    await store.close()
    assert sorted(s for [s] in await asyncio.gather(*tasks)) == list(range(1, 201))
    assert store.stats.operations == 200 and store.stats.commits >= 200 // 16
    async with open_store(url) as again:
        assert await again.last_seq("s") == 200


async def test_two_stores_one_file(url: str) -> None:
    """Tests that two stores on one file allocate gap-free seqs for the same session."""
    async with SQLiteStore(url) as a, SQLiteStore(url) as b:
        results = await asyncio.gather(*(
            s.append_messages([("s", jmsg("stream")), ("s", jmsg("stream"))])
            for _ in range(150) for s in (a, b)))
        assert sorted(x for r in results for x in r) == list(range(1, 601))
        assert [seq for seq, _ in await b.messages("s")] == list(range(1, 601))


async def test_second_process_on_one_file(url: str) -> None:
    """Tests that a second process writing the same session keeps seqs gap-free."""
    async with open_store(url) as store:
        proc = await start_child(url, 300)
        mine = []
        for i in range(300):
            msg = {"header": {"msg_type": "stream"}, "content": {"who": "parent", "i": i}}
            mine += await store.append_messages([("s", msg)])
        out, _ = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0
        theirs = [int(line) for line in out.split()]
        assert sorted(mine + theirs) == list(range(1, 601))
        stored = await store.messages("s")
        assert [seq for seq, _ in stored] == list(range(1, 601))
        assert [seq for seq, m in stored if m["content"]["who"] == "child"] == theirs


async def test_survives_kill_9(url: str) -> None:
    """Tests that every seq a killed (SIGKILL) writer was given is in the file afterwards."""
    proc = await start_child(url, 100_000)
    assert proc.stdout is not None
    acked = [int(await asyncio.wait_for(proc.stdout.readline(), 10)) for _ in range(200)]
    proc.send_signal(signal.SIGKILL)
    await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == -signal.SIGKILL
    async with open_store(url) as store:
        last = await store.last_seq("s")
        assert last >= acked[-1]
        assert [seq for seq, _ in await store.messages("s")] == list(range(1, last + 1))


async def test_open_store_urls(tmp_path: Path) -> None:
    """Tests that open_store names bad URLs and what to use instead."""
    with pytest.raises(UnknownStore, match=r"redis://h/0.*sqlite:///"):
        open_store("redis://h/0")
    with pytest.raises(UnknownStore, match="accepted"):
        open_store("just-a-path.db")
    for bad in ("sqlite://host/x.db", "sqlite:///", "sqlite:///:memory:", "sqlite:///x.db?a=1"):
        with pytest.raises(UnknownStore, match="sqlite:///absolute"):
            open_store(bad)
    odd = tmp_path / "a dir?#%" / "c.db"
    odd.parent.mkdir()
    s = open_store(sqlite_url(odd))
    assert isinstance(s, SQLiteStore) and s.path == odd
    async with s:
        await s.append_messages([("s", jmsg("stream"))])
    assert odd.exists()


async def test_open_errors_name_the_file(tmp_path: Path) -> None:
    """Tests that a missing directory or a newer schema fail open() with a clear StoreError."""
    with pytest.raises(StoreError, match="does not exist"):
        await open_store(sqlite_url(tmp_path / "nowhere" / "c.db")).open()
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="upgrade cellbus"):
        await open_store(sqlite_url(newer)).open()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="junk.db"):
        await open_store(sqlite_url(junk)).open()


def test_default_sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests the default store location under XDG_DATA_HOME, else ~/.local/share."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_sqlite_url() == sqlite_url(tmp_path / "xdg" / "cellbus" / "cellbus.db")
    assert (tmp_path / "xdg" / "cellbus").is_dir()
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    home_default = tmp_path / "home" / ".local" / "share" / "cellbus" / "cellbus.db"
    assert default_sqlite_path() == home_default


# -- retention: giving space back ------------------------------------------------------------


async def test_compaction_and_reclaim_shrink_the_file(url: str) -> None:
    """Tests that a new store is auto_vacuum=INCREMENTAL, and that after compacting a big
    finished session, reclaim_space() truncates the file and the WAL to about what is left
    (plus the few free pages kept for new rows)."""
    import time

    from broker.store._sqlite_retention import KEEP_FREE_PAGES
    from test_store_contract import evaluated, finished_session, out

    async with SQLiteStore(url) as store:
        assert store.auto_vacuum == "incremental" and "INCREMENTAL" in store.describe()
        await finished_session(store)
        for run in range(20):
            await evaluated(store, "1", [out(f"run {run} line {i} " + "x" * 200 + "\n")
                                         for i in range(200)])
        await store.reclaim_space()  # a checkpoint: the size of the data, not of the WAL
        full = await store.disk_usage()
        stats = await store.compact(time.time() + 1)
        assert stats.sessions == 1 and stats.requests_removed == 19
        line = await store.reclaim_space()
        small = await store.disk_usage()
        kept_free = KEEP_FREE_PAGES * 4096  # free pages left in the file for new rows
        assert full is not None and small is not None and small - kept_free < full / 10, (
            full, small)
        assert line is not None and "auto_vacuum incremental" in line
        [(seq, msg)] = [m for m in await store.messages("s1") if m[1]["msg_type"] == "stream"]
        text = msg["content"]["text"]
        assert text.count("\n") == 200 and "run 19 line 199" in text


async def test_an_older_small_store_is_converted_to_incremental(tmp_path: Path) -> None:
    """Tests that a store created before retention (auto_vacuum NONE) is converted when it is
    opened, keeping its data."""
    path = tmp_path / "old.db"
    async with SQLiteStore(sqlite_url(path)) as store:
        await store.add_request(execute())
    with sqlite3.connect(path) as conn:  # as it was: auto_vacuum NONE
        conn.execute("PRAGMA auto_vacuum=NONE")
        conn.execute("VACUUM")
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    conn.close()
    async with SQLiteStore(sqlite_url(path)) as store:
        assert store.auto_vacuum == "incremental"
        assert len(await store.requests("needs_work")) == 1


async def test_a_large_worksheet_is_deleted_a_part_at_a_time_so_other_writes_go_on(
        store: SQLiteStore) -> None:
    """Tests that deleting a worksheet with many messages deletes them all, in writes of
    MESSAGES_AT_ONCE, with other sessions' appends stored between them: in one transaction,
    300,000 messages held every other user's output for a second."""
    from broker.store import _worksheet_rows
    at_once = _worksheet_rows.MESSAGES_AT_ONCE
    await store.put_session(SessionRecord("big", "ann", "ws", None, "closed", 1.0, 1.0))
    for _ in range(3):
        await store.append_messages([("big", jmsg("stream")) for _ in range(at_once)])
    await store.append_messages([("big", jmsg("stream")) for _ in range(7)])
    before = store.stats.commits
    deleting = asyncio.ensure_future(store.delete_worksheet("ann", "ws"))
    others = []
    while not deleting.done():  # another user's output, while the deletion goes on
        others.append(await store.append_messages([("other", jmsg("stream"))]))
    deleted = await deleting
    assert deleted is not None and deleted.messages == 3 * at_once + 7
    assert await store.messages("big") == []
    assert len(await store.messages("other")) == len(others) >= 3
    assert store.stats.commits - before >= 5  # the first write, then four of messages

"""A store file that another process changed while the broker was stopped (a restored copy
of a table, a hand edit, an older tool): the broker goes on storing, losing and repeating
nothing, instead of failing every write from then on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from broker.store import sqlite_url
from broker.store.sqlite import SQLiteStore

from test_store_contract import jmsg

pytestmark = pytest.mark.timeout(20)


async def test_a_seqs_table_behind_its_messages_gives_the_next_seqs_after_them(
        tmp_path: Path) -> None:
    """Tests that a store whose ``seqs`` counters were set back (to 0 here) by another
    process gives a session's next messages the seqs after the ones it holds, and stores
    other sessions' alongside: each append took a seq the messages had already, and the
    UNIQUE failure failed every batch that carried one, every session's output with it (the
    broker refused all work and devices held their output, for good)."""
    url = sqlite_url(tmp_path / "cellbus.db")
    store = SQLiteStore(url)
    await store.open()
    first = [("s", jmsg("stream", content={"i": i})) for i in range(3)]
    assert await store.append_messages(first) == [1, 2, 3]
    await store.close()
    with sqlite3.connect(tmp_path / "cellbus.db") as db:
        db.execute("UPDATE seqs SET last = 0")
    store = SQLiteStore(url)
    await store.open()
    try:
        seqs = await store.append_messages([("s", jmsg("stream", content={"i": 3})),
                                            ("t", jmsg("stream", content={"i": 0}))])
        assert seqs == [4, 1]
        assert [m["content"]["i"] for _, m in await store.messages("s")] == [0, 1, 2, 3]
        assert await store.last_seq("s") == 4
        assert await store.append_messages([("s", jmsg("stream", content={"i": 4}))]) == [5]
    finally:
        await store.close()

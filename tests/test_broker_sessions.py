"""The broker's cache of open sessions (broker/sessions.py), over a real SQLite store."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.sessions import OpenSessions
from broker.store import CLOSED, OPEN, SessionRecord, sqlite_url
from broker.store.sqlite import SQLiteStore

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(sqlite_url(tmp_path / "cellbus.db"))
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def record(session: str, worksheet: str = "ws", state: str = OPEN) -> SessionRecord:
    return SessionRecord(session=session, user="u", worksheet=worksheet, device="d1",
                         state=state, created=1.0, last_activity=1.0)


async def test_reads_through_then_serves_what_it_wrote(store: SQLiteStore) -> None:
    await store.put_session(record("s1"))  # written before the cache existed: read through
    sessions = OpenSessions(store)
    found = await sessions.find("u", "ws")
    assert found is not None and found.session == "s1"
    assert await sessions.find("u", "other") is None  # "none open" is remembered too

    closed = dataclasses.replace(found, state=CLOSED)
    await store.put_session(closed)
    sessions.stored(closed)
    assert await sessions.find("u", "ws") is None
    fresh = record("s2")
    await store.put_session(fresh)
    sessions.stored(fresh)
    assert (await sessions.find("u", "ws")).session == "s2"  # type: ignore[union-attr]
    # and the store agrees with the cache, which is the point of writing through
    assert (await store.find_session("u", "ws")).session == "s2"  # type: ignore[union-attr]


async def test_callers_get_copies(store: SQLiteStore) -> None:
    sessions = OpenSessions(store)
    sessions.stored(record("s1"))
    mine = await sessions.find("u", "ws")
    assert mine is not None
    mine.device = "elsewhere"  # not stored: the cache must not show it
    assert (await sessions.find("u", "ws")).device == "d1"  # type: ignore[union-attr]


async def test_capacity_evicts_least_recently_used(store: SQLiteStore) -> None:
    sessions = OpenSessions(store, capacity=2)
    for i in range(3):
        rec = record(f"s{i}", worksheet=f"w{i}")
        await store.put_session(rec)
        sessions.stored(rec)
    assert len(sessions._open) == 2
    # w0 fell out and is read from the store again, still correct
    assert (await sessions.find("u", "w0")).session == "s0"  # type: ignore[union-attr]
    assert list(sessions._open) == [("u", "w2"), ("u", "w0")]

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


async def test_loaded_while_all_fit_answers_from_memory(store: SQLiteStore) -> None:
    await store.put_session(record("s1", worksheet="w1"))
    await store.put_session(record("s2", worksheet="w2", state=CLOSED))
    sessions = OpenSessions(store, capacity=5)
    await sessions.load()
    assert sessions.complete
    assert (await sessions.find("u", "w1")).session == "s1"  # type: ignore[union-attr]
    assert await sessions.find("u", "w2") is None  # closed
    # Complete: a worksheet it has no record of is not looked up. (Only to show that: a
    # store has one broker, and nothing else writes sessions into it.)
    await store.put_session(record("s3", worksheet="w3"))
    assert await sessions.find("u", "w3") is None


async def test_loaded_past_capacity_reads_through(store: SQLiteStore) -> None:
    for i in range(3):
        await store.put_session(record(f"s{i}", worksheet=f"w{i}"))
    sessions = OpenSessions(store, capacity=2)
    await sessions.load()
    assert not sessions.complete
    assert list(sessions._open) == [("u", "w1"), ("u", "w2")]  # the newest two
    assert (await sessions.find("u", "w0")).session == "s0"  # type: ignore[union-attr]


async def test_dropping_a_session_for_room_ends_completeness(store: SQLiteStore) -> None:
    sessions = OpenSessions(store, capacity=1)
    await sessions.load()
    assert sessions.complete
    for i in range(2):
        rec = record(f"s{i}", worksheet=f"w{i}")
        await store.put_session(rec)
        sessions.stored(rec)
    assert not sessions.complete
    assert (await sessions.find("u", "w0")).session == "s0"  # type: ignore[union-attr]

"""The store contract: every backend of broker.store must pass every test here.

Backends are the params of ``store_url``; a backend's entry in :data:`BACKENDS` is a
function from a fresh tmp_path to the URL of an empty store, and is one line to add.

MongoDB runs only against a real server named by ``CELLBUS_TEST_MONGODB_URL`` (each test on
a fresh database, dropped afterwards); without it its tests are skipped, saying why.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from broker.store import (ANY, DONE, ERROR, NEEDS_WORK, SUPERSEDED, WORKING, DeviceRecord,
                          DuplicateRequest, InvalidTransition, Request, SessionRecord, Store,
                          StoreClosed, StoreError, UnknownRequest, open_store, sqlite_url)

MONGODB_ENV = "CELLBUS_TEST_MONGODB_URL"
MONGODB_URL = os.environ.get(MONGODB_ENV, "")
MONGODB_SKIP = (f"MongoDB suite did not run: {MONGODB_ENV} is not set (no MongoDB server can "
                "be installed on this machine); see README.rst")


def mongodb_url(tmp: Path) -> str:
    """A fresh database on the server at $CELLBUS_TEST_MONGODB_URL (``store_url`` drops it)."""
    parts = urlsplit(MONGODB_URL)
    return urlunsplit(parts._replace(path=f"/cellbus_test_{uuid.uuid4().hex[:16]}"))


async def drop_mongodb_database(url: str) -> None:
    """Drop the database a test's MongoDB store URL names."""
    from pymongo import AsyncMongoClient
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        await client.drop_database(client.get_default_database())
    finally:
        await client.close()


BACKENDS: list[Any] = [
    pytest.param(lambda tmp: sqlite_url(tmp / "cellbus.db"), id="sqlite"),
    pytest.param(mongodb_url, id="mongodb", marks=[pytest.mark.mongodb] + (
        [] if MONGODB_URL else [pytest.mark.skip(reason=MONGODB_SKIP)])),
    # a backend is one more line: pytest.param(<tmp_path -> URL of an empty store>, id=...)
]

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(params=BACKENDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a fresh, empty store of each backend."""
    make: Callable[[Path], str] = request.param
    url = make(tmp_path)
    yield url
    if url.startswith("mongodb"):
        await drop_mongodb_database(url)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open store, closed after the test."""
    s = open_store(store_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def jmsg(msg_type: str, *, session: str = "s1", parent: str | None = None,
         content: dict[str, Any] | None = None, buffers: list[bytes] | None = None
         ) -> dict[str, Any]:
    """A Jupyter-shaped message."""
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": msg_type, "session": session, "username": "ann",
              "date": "2025-01-01T00:00:00.000000Z", "version": "5.4"}
    return {"header": header, "msg_id": msg_id, "msg_type": msg_type,
            "parent_header": {"msg_id": parent} if parent else {}, "metadata": {},
            "content": content or {}, "buffers": buffers or []}


def execute(cell_id: str = "5", *, code: str = "print(2)", session: str = "s1",
            user: str = "ann", worksheet: str = "ws") -> Request:
    """A new execute_request record."""
    msg = jmsg("execute_request", session=session, content={"code": code})
    return Request(msg["msg_id"], session, user, worksheet, cell_id, "execute_request", code,
                   msg)


def interact(interact_id: str, state: int, *, session: str = "s1") -> Request:
    """A new interact_request record."""
    msg = jmsg("interact_request", session=session,
               content={"interact_id": interact_id, "values": {"n": state}, "state": state})
    return Request(msg["msg_id"], session, "ann", "ws", "5", "interact_request", "", msg,
                   interact_id=interact_id, state=state)


# -- requests -----------------------------------------------------------------------------


async def test_add_and_get_request(store: Store) -> None:
    """Tests that a request comes back whole, with `created` set by the store."""
    req = execute(code="x = 1")
    req.message["buffers"] = [b"\x00\xffraw"]
    before = time.time()
    stored = await store.add_request(req)
    assert before <= stored.created <= time.time()
    got = await store.get_request(req.msg_id)
    assert got == stored
    assert got is not None and got.message == req.message and got.status == NEEDS_WORK
    assert isinstance(got.message["buffers"][0], bytes)
    assert await store.get_request("nope") is None


async def test_add_request_keeps_given_created(store: Store) -> None:
    """Tests that a nonzero `created` is kept."""
    req = execute()
    req.created = 1234.5
    assert (await store.add_request(req)).created == 1234.5
    got = await store.get_request(req.msg_id)
    assert got is not None and got.created == 1234.5


async def test_duplicate_msg_id(store: Store) -> None:
    """Tests that a msg_id can be stored once only."""
    req = await store.add_request(execute(code="first"))
    with pytest.raises(DuplicateRequest, match=req.msg_id) as e:
        await store.add_request(replace(execute("6", code="second"), msg_id=req.msg_id))
    assert isinstance(e.value, StoreError)
    assert await store.get_request(req.msg_id) == req


async def test_transitions_and_timestamps(store: Store) -> None:
    """Tests the legal path needs_work -> working -> done and its timestamps."""
    req = await store.add_request(execute())
    working = await store.update_request(req.msg_id, WORKING, device="d1")
    assert working.status == WORKING and working.device == "d1"
    assert working.started is not None and working.started >= req.created
    assert working.finished is None
    done = await store.update_request(req.msg_id, DONE)
    assert done.status == DONE and done.device == "d1" and done.started == working.started
    assert done.finished is not None and done.finished >= working.started
    assert await store.get_request(req.msg_id) == done


async def test_assign_places_a_pending_request_only(store: Store) -> None:
    """Tests that assign_request moves a needs_work request to a device and nothing else."""
    req = await store.add_request(execute())
    placed = await store.assign_request(req.msg_id, "d2")
    assert placed.status == NEEDS_WORK and placed.device == "d2"
    assert [r.msg_id for r in await store.requests(NEEDS_WORK, device="d2")] == [req.msg_id]
    await store.update_request(req.msg_id, WORKING)
    with pytest.raises(InvalidTransition):
        await store.assign_request(req.msg_id, "d3")
    with pytest.raises(UnknownRequest):
        await store.assign_request("no-such-request", "d3")


async def test_error_transition_records_error(store: Store) -> None:
    """Tests that -> error is final and keeps the error text."""
    req = await store.add_request(execute())
    await store.update_request(req.msg_id, WORKING, device="d1")
    failed = await store.update_request(req.msg_id, ERROR, error="worker died")
    assert failed.error == "worker died" and failed.finished is not None
    with pytest.raises(InvalidTransition):
        await store.update_request(req.msg_id, WORKING)
    rejected = await store.add_request(execute("6"))
    assert (await store.update_request(rejected.msg_id, ERROR, error="too big")).status == ERROR


async def test_hand_back_unplaces(store: Store) -> None:
    """Tests working -> needs_work (device lost): started cleared, device cleared."""
    req = await store.add_request(execute())
    await store.update_request(req.msg_id, WORKING, device="d1")
    back = await store.update_request(req.msg_id, NEEDS_WORK)
    assert back.status == NEEDS_WORK and back.device is None and back.started is None
    assert [r.msg_id for r in await store.requests(NEEDS_WORK, device=None)] == [req.msg_id]
    again = await store.update_request(req.msg_id, WORKING, device="d2")
    assert again.device == "d2" and again.started is not None


@pytest.mark.parametrize("path,bad", [
    ([], DONE), ([], NEEDS_WORK), ([WORKING], WORKING), ([WORKING], SUPERSEDED),
    ([WORKING, DONE], WORKING), ([WORKING, DONE], ERROR), ([SUPERSEDED], NEEDS_WORK),
    ([ERROR], WORKING), ([], "bogus"),
])
async def test_illegal_transitions(store: Store, path: list[str], bad: str) -> None:
    """Tests that every transition outside the allowed set raises and changes nothing."""
    req = await store.add_request(execute())
    for status in path:
        await store.update_request(req.msg_id, status)
    before = await store.get_request(req.msg_id)
    with pytest.raises(InvalidTransition) as e:
        await store.update_request(req.msg_id, bad)
    assert e.value.old == (path[-1] if path else NEEDS_WORK) and e.value.new == bad
    assert isinstance(e.value, StoreError)
    assert await store.get_request(req.msg_id) == before


async def test_update_unknown_request(store: Store) -> None:
    """Tests that updating an unknown msg_id raises UnknownRequest, a KeyError."""
    with pytest.raises(UnknownRequest) as e:
        await store.update_request("missing", WORKING)
    assert isinstance(e.value, KeyError) and "missing" in str(e.value)


async def test_cell_request_is_latest_execute(store: Store) -> None:
    """Tests that cell_request returns the cell's newest execute_request only."""
    assert await store.cell_request("ann", "ws", "5") is None
    await store.add_request(execute(code="a"))
    second = await store.add_request(execute(code="b"))
    await store.add_request(interact("f", 1))  # same cell, but not an execute_request
    await store.add_request(execute("6", code="other cell"))
    await store.add_request(execute(code="other ws", worksheet="ws2"))
    await store.add_request(execute(code="other user", user="bob"))
    got = await store.cell_request("ann", "ws", "5")
    assert got is not None and got.msg_id == second.msg_id and got.input == "b"


async def test_requests_by_status_and_device(store: Store) -> None:
    """Tests requests(): filtered by status and device, oldest first, limited."""
    reqs = [await store.add_request(execute(str(i))) for i in range(6)]
    ids = [r.msg_id for r in reqs]
    await store.update_request(ids[1], WORKING, device="d1")
    await store.update_request(ids[3], WORKING, device="d2")
    await store.update_request(ids[4], WORKING, device="d1")
    await store.update_request(ids[4], NEEDS_WORK, device="d1")  # handed back, kept on d1

    def names(rs: list[Request]) -> list[str]:
        return [r.msg_id for r in rs]

    assert names(await store.requests(NEEDS_WORK)) == [ids[0], ids[2], ids[4], ids[5]]
    assert names(await store.requests(NEEDS_WORK, device=ANY)) == [ids[0], ids[2], ids[4],
                                                                  ids[5]]
    assert names(await store.requests(NEEDS_WORK, device=None)) == [ids[0], ids[2], ids[5]]
    assert names(await store.requests(NEEDS_WORK, device="d1")) == [ids[4]]
    assert names(await store.requests(WORKING)) == [ids[1], ids[3]]
    assert names(await store.requests(WORKING, device="d2")) == [ids[3]]
    assert names(await store.requests(NEEDS_WORK, limit=2)) == [ids[0], ids[2]]
    assert await store.requests(NEEDS_WORK, limit=0) == []
    assert await store.requests(DONE) == []


async def test_supersede_pending(store: Store) -> None:
    """Tests that a newer interact state supersedes older pending ones of its interact."""
    old1 = await store.add_request(interact("f", 1))
    started = await store.add_request(interact("f", 2))
    await store.update_request(started.msg_id, WORKING, device="d1")
    old3 = await store.add_request(interact("f", 3))
    other = await store.add_request(interact("g", 1))
    other_session = await store.add_request(interact("f", 1, session="s2"))
    newest = await store.add_request(interact("f", 5))
    assert await store.supersede_pending("s1", "f", 5) == [old1.msg_id, old3.msg_id]
    for req, status in [(old1, SUPERSEDED), (old3, SUPERSEDED), (started, WORKING),
                        (other, NEEDS_WORK), (other_session, NEEDS_WORK),
                        (newest, NEEDS_WORK)]:
        got = await store.get_request(req.msg_id)
        assert got is not None and got.status == status, req
    got = await store.get_request(old1.msg_id)
    assert got is not None and got.finished is not None
    assert await store.supersede_pending("s1", "f", 5) == []


# -- messages -----------------------------------------------------------------------------


async def test_seqs_are_gap_free_per_session(store: Store) -> None:
    """Tests seqs 1..N per session across calls, and interleaved sessions in one batch."""
    assert await store.last_seq("a") == 0
    assert await store.append_messages([("a", jmsg("stream"))]) == [1]
    items = [("a", jmsg("stream")), ("b", jmsg("stream")), ("a", jmsg("stream")),
             ("c", jmsg("stream")), ("b", jmsg("stream")), ("a", jmsg("stream"))]
    assert await store.append_messages(items) == [2, 1, 3, 1, 2, 4]
    assert await store.append_messages([("b", jmsg("status"))]) == [3]
    assert await store.append_messages([]) == []
    assert [await store.last_seq(s) for s in "abcd"] == [4, 3, 1, 0]
    got = await store.messages("a")
    assert [seq for seq, _ in got] == [1, 2, 3, 4]
    assert [m for _, m in got[1:]] == [items[0][1], items[2][1], items[5][1]]


async def test_concurrent_appends_one_session(store: Store) -> None:
    """Tests 20 concurrent callers x 50 messages: seqs exactly 1..1000, each caller's rising."""
    async def caller(n: int) -> list[int]:
        seqs: list[int] = []
        for i in range(50):
            msg = jmsg("stream", content={"caller": n, "i": i})
            seqs += await store.append_messages([("s1", msg)])
        return seqs

    results = await asyncio.gather(*(caller(n) for n in range(20)))
    assert sorted(s for seqs in results for s in seqs) == list(range(1, 1001))
    for seqs in results:
        assert seqs == sorted(seqs)
    stored = await store.messages("s1")
    assert [seq for seq, _ in stored] == list(range(1, 1001))
    for n, seqs in enumerate(results):  # each seq holds the message its caller was told
        mine = [m["content"]["i"] for seq, m in stored if m["content"]["caller"] == n]
        assert mine == list(range(50))
        assert [seq for seq, m in stored if m["content"]["caller"] == n] == seqs
    assert await store.last_seq("s1") == 1000


async def test_two_stores_share_seqs(store_url: str) -> None:
    """Tests two stores on one database (two brokers) appending to one session: 1..N."""
    async with open_store(store_url) as a, open_store(store_url) as b:
        async def caller(s: Store, who: str) -> list[int]:
            seqs: list[int] = []
            for i in range(40):
                msg = jmsg("stream", content={"who": who, "i": i})
                seqs += await s.append_messages([("s1", msg)])
            return seqs

        names = [f"{side}{n}" for side in "ab" for n in range(5)]
        results = await asyncio.gather(*(caller(a if name[0] == "a" else b, name)
                                         for name in names))
        assert sorted(s for seqs in results for s in seqs) == list(range(1, 401))
        stored = await b.messages("s1")
        assert [seq for seq, _ in stored] == list(range(1, 401))
        for name, seqs in zip(names, results):
            assert seqs == sorted(seqs)
            assert [seq for seq, m in stored if m["content"]["who"] == name] == seqs
        assert await a.last_seq("s1") == await b.last_seq("s1") == 400


async def test_buffers_round_trip(store: Store) -> None:
    """Tests that binary buffers and nested content come back exactly, as bytes."""
    bufs = [bytes(range(256)), b"", b"\x89PNG\r\n" * 1000]
    msg = jmsg("display_data", buffers=bufs,
               content={"data": {"text/plain": "é ∑"}, "n": [1, 2.5, None, True]})
    await store.append_messages([("s1", msg)])
    [(seq, got)] = await store.messages("s1")
    assert seq == 1 and got == msg
    assert all(type(b) is bytes for b in got["buffers"])


async def test_messages_since_parent_limit(store: Store) -> None:
    """Tests messages() with since, parent and limit."""
    items = [("s1", jmsg("stream", parent="p1" if i % 2 == 0 else "p2", content={"i": i}))
             for i in range(10)]
    items.append(("s2", jmsg("stream", parent="p1")))
    await store.append_messages(items)

    def seqs(got: list[tuple[int, dict[str, Any]]]) -> list[int]:
        return [seq for seq, _ in got]

    assert seqs(await store.messages("s1", since=7)) == [8, 9, 10]
    assert seqs(await store.messages("s1", since=10)) == []
    assert seqs(await store.messages("s1", parent="p1")) == [1, 3, 5, 7, 9]
    assert seqs(await store.messages("s1", parent="p2", since=4)) == [6, 8, 10]
    assert seqs(await store.messages("s1", limit=3)) == [1, 2, 3]
    assert seqs(await store.messages("s1", since=2, parent="p1", limit=2)) == [3, 5]
    assert seqs(await store.messages("s1", parent="nobody")) == []
    assert seqs(await store.messages("s2")) == [1]
    assert await store.messages("none") == []
    [(_, m)] = await store.messages("s1", since=4, limit=1)
    assert m["content"] == {"i": 4}


# -- sessions and devices -----------------------------------------------------------------


async def test_sessions_upsert_and_find(store: Store) -> None:
    """Tests put/get/find/sessions, with upsert replacing the record."""
    a = SessionRecord("sa", "ann", "ws", "d1", "open", 100.0, 100.0)
    b = SessionRecord("sb", "ann", "ws2", None, "open", 101.0, 101.0)
    await store.put_session(a)
    await store.put_session(b)
    assert await store.get_session("sa") == a and await store.get_session("x") is None
    assert await store.find_session("ann", "ws") == a
    assert await store.find_session("bob", "ws") is None
    a2 = SessionRecord("sa", "ann", "ws", "d2", "closed", 100.0, 150.0)
    await store.put_session(a2)
    assert await store.get_session("sa") == a2
    assert await store.find_session("ann", "ws") is None
    c = SessionRecord("sc", "ann", "ws", "d3", "open", 200.0, 200.0)
    await store.put_session(c)
    assert await store.find_session("ann", "ws") == c
    assert await store.sessions() == [a2, b, c]
    assert await store.sessions("open") == [b, c]
    assert await store.sessions("closed") == [a2]


async def test_devices_upsert_list_remove(store: Store) -> None:
    """Tests put_device upserts, devices() lists by name, remove_device forgets."""
    d2 = DeviceRecord("d2", 4, 0, 10.0, {"host": "b", "tags": ["gpu"]})
    d1 = DeviceRecord("d1", 8, 1, 11.0, {})
    await store.put_device(d2)
    await store.put_device(d1)
    assert await store.devices() == [d1, d2]
    d1b = DeviceRecord("d1", 8, 5, 12.0, {"host": "a"})
    await store.put_device(d1b)
    assert await store.devices() == [d1b, d2]
    assert await store.remove_device("d1") is True
    assert await store.remove_device("d1") is False
    assert await store.devices() == [d2]


# -- durability and failure -----------------------------------------------------------------


async def test_persists_across_reopen(store_url: str) -> None:
    """Tests that everything written is there after close and reopen of the same store."""
    req = execute()
    async with open_store(store_url) as s:
        await s.add_request(req)
        await s.update_request(req.msg_id, WORKING, device="d1")
        await s.append_messages([("s1", jmsg("stream", buffers=[b"\x01"])) for _ in range(5)])
        await s.put_session(SessionRecord("s1", "ann", "ws", "d1", "open", 1.0, 2.0))
        await s.put_device(DeviceRecord("d1", 2, 1, 3.0, {"k": "v"}))
    async with open_store(store_url) as s:
        got = await s.get_request(req.msg_id)
        assert got is not None and got.status == WORKING and got.message == req.message
        assert await s.last_seq("s1") == 5
        assert await s.append_messages([("s1", jmsg("stream"))]) == [6]
        assert len(await s.messages("s1")) == 6
        assert await s.find_session("ann", "ws") is not None
        assert [d.info for d in await s.devices()] == [{"k": "v"}]


async def test_failing_ops_fail_alone(store: Store) -> None:
    """Tests that concurrent writes where some fail leave the others committed."""
    existing = await store.add_request(execute("1"))
    working = await store.add_request(execute("2"))
    await store.update_request(working.msg_id, WORKING, device="d1")
    finished = await store.add_request(execute("3"))
    await store.update_request(finished.msg_id, ERROR, error="rejected")
    fresh = execute("4")
    results = await asyncio.gather(
        store.add_request(fresh),
        store.add_request(replace(execute("5"), msg_id=existing.msg_id)),
        store.append_messages([("s1", jmsg("stream")), ("s2", jmsg("stream"))]),
        store.update_request(working.msg_id, NEEDS_WORK),  # legal hand-back
        store.update_request("missing", DONE),
        store.update_request(finished.msg_id, WORKING),  # illegal: error is final
        store.append_messages([("s3", jmsg("stream"))]),
        return_exceptions=True)
    assert isinstance(results[0], Request)
    assert isinstance(results[1], DuplicateRequest)
    assert results[2] == [1, 1]
    assert isinstance(results[3], Request) and results[3].status == NEEDS_WORK
    assert isinstance(results[4], UnknownRequest)
    assert isinstance(results[5], InvalidTransition)
    assert results[6] == [1]
    assert await store.get_request(fresh.msg_id) is not None
    assert await store.get_request(existing.msg_id) == existing
    got = await store.get_request(working.msg_id)
    assert got is not None and got.status == NEEDS_WORK
    got = await store.get_request(finished.msg_id)
    assert got is not None and got.status == ERROR
    assert [await store.last_seq(s) for s in ("s1", "s2", "s3")] == [1, 1, 1]


async def test_unstorable_message_is_rejected(store: Store) -> None:
    """Tests that a message the store cannot encode raises StoreError and stores nothing."""
    with pytest.raises(StoreError):
        await store.append_messages([("s1", jmsg("stream")),
                                     ("s1", jmsg("stream", content={"x": object()}))])
    assert await store.last_seq("s1") == 0


async def test_closed_store_refuses(store_url: str) -> None:
    """Tests that every call on a closed (or never opened) store raises StoreClosed."""
    s = open_store(store_url)
    with pytest.raises(StoreClosed):
        await s.get_request("x")
    await s.open()
    await s.close()
    await s.close()  # twice is fine
    for call in (s.add_request(execute()), s.get_request("x"), s.last_seq("s1"),
                 s.append_messages([("s1", jmsg("stream"))]), s.devices()):
        with pytest.raises(StoreError, match="closed"):
            await call
    assert "closed" in str(StoreClosed("store x is closed"))


async def test_describe_names_the_store(store: Store) -> None:
    """Tests that describe() gives a log-line description without secrets."""
    text = store.describe()
    assert text and "@" not in text.split("://")[-1].split("/")[0]

"""The store contract: every backend of broker.store must pass every test here.

Backends are the params of ``store_url`` (:data:`BACKENDS`); a backend is one more param,
and the URL of an empty store of it in ``store_url``.

MongoDB runs against the server named by ``CELLBUS_TEST_MONGODB_URL``, else against
SecantusDB (a MongoDB-compatible server, not MongoDB) that the tests start, in both of its
modes (tests/mongodb_server.py); each test on a fresh database, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from broker.store import (ANY, CLOSED, DELETING, DONE, ERROR, NEEDS_WORK, OPEN, SUPERSEDED,
                          WORKING, DeletedRuns,
                          DeviceRecord,
                          DuplicateRequest, InvalidTransition, PermalinkRecord, Progress, Request,
                          SessionRecord, Store,
                          StoreClosed, StoreError, UnknownRequest, UserRecord, open_store,
                          sqlite_url)
from mongodb_server import drop_database, fresh_database

BACKENDS: list[Any] = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("replset", id="mongodb", marks=pytest.mark.mongodb),
    pytest.param("standalone", id="mongodb-standalone", marks=pytest.mark.mongodb),
]

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(params=BACKENDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a fresh, empty store of each backend: a SQLite file, or a fresh database
    on the MongoDB server of each mode (``mongodb_server`` in conftest.py), dropped after."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "cellbus.db")
        return
    url = fresh_database(request.getfixturevalue("mongodb_server")(request.param))
    yield url
    await asyncio.to_thread(drop_database, url)


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


async def test_unfinished_requests_of_a_session(store: Store) -> None:
    """unfinished_requests(): the session's needs_work and working requests, oldest first,
    none of another session's or a finished one; session_requests() has them all."""
    reqs = [await store.add_request(execute(str(i))) for i in range(5)]
    other = await store.add_request(execute("9", session="s2"))
    ids = [r.msg_id for r in reqs]
    await store.update_request(ids[0], WORKING, device="d1")
    await store.update_request(ids[0], DONE)
    await store.update_request(ids[1], ERROR)
    await store.update_request(ids[3], WORKING, device="d1")
    assert [r.msg_id for r in await store.unfinished_requests("s1")] == [ids[2], ids[3],
                                                                         ids[4]]
    assert [r.status for r in await store.unfinished_requests("s1")] == [NEEDS_WORK, WORKING,
                                                                         NEEDS_WORK]
    assert [r.msg_id for r in await store.unfinished_requests("s2")] == [other.msg_id]
    assert await store.unfinished_requests("nobody") == []
    assert [r.msg_id for r in await store.session_requests("s1")] == ids


async def test_interact_runs_newest_first_after_the_cell(store: Store) -> None:
    """interact_runs(): an interact's runs in its session stored after the given request,
    newest first, paged with ``before`` and ``limit``; none of another interact, another
    session, or from before the cell's request."""
    early = await store.add_request(interact("f", 0))  # before the cell's run
    cell = await store.add_request(execute())
    runs = []
    for state in range(1, 6):
        runs.append(await store.add_request(interact("f", state)))
        await store.add_request(interact("g", state))
        await store.add_request(execute("6", code=str(state)))
    await store.add_request(interact("f", 9, session="s2"))
    ids = [r.msg_id for r in runs][::-1]

    async def names(**kwargs: Any) -> list[str]:
        return [r.msg_id for r in await store.interact_runs("s1", "f", after=cell.msg_id,
                                                            **kwargs)]

    assert await names() == ids
    assert await names(limit=2) == ids[:2]
    assert await names(before=ids[1], limit=2) == ids[2:4]
    assert await names(before=ids[3]) == ids[4:]
    assert await names(limit=0) == []
    got = (await store.interact_runs("s1", "f", after=cell.msg_id, limit=1))[0]
    assert (got.msg_type, got.interact_id, got.state) == ("interact_request", "f", 5)
    assert early.msg_id not in await names()
    assert await store.interact_runs("s1", "f", after="unknown") == []
    assert await store.interact_runs("s1", "nope", after=cell.msg_id) == []


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


async def test_user_bytes_counts_the_messages_of_a_users_sessions(store: Store) -> None:
    """Tests that user_bytes is the size of every stored message of the user's sessions,
    and of nobody else's (every backend here can tell: none answers None)."""
    for session, user in (("s1", "ann"), ("s2", "ann"), ("s3", "bob")):
        await store.put_session(SessionRecord(session, user, "ws", None, "open", 1.0, 1.0))
    assert await store.user_bytes("ann") == 0
    big = "x" * 100_000
    await store.append_messages([("s1", jmsg("stream", content={"text": big})),
                                 ("s2", jmsg("stream", content={"text": big})),
                                 ("s3", jmsg("stream", content={"text": "small"}))])
    ann, bob = await store.user_bytes("ann"), await store.user_bytes("bob")
    assert ann is not None and bob is not None
    assert 200_000 < ann < 202_000 and 0 < bob < 1_000
    assert await store.user_bytes("nobody") == 0


async def test_a_request_keeps_an_input_other_than_its_code(store: Store) -> None:
    """Tests that an execute request's input is given back as it was when it is not the
    code its message carries, and an interact request's empty input stays empty."""
    odd = replace(execute(code="print(1)"), input="print(2)")
    await store.add_request(odd)
    plain = await store.add_request(execute(cell_id="6", code=""))
    runs = await store.add_request(interact("i1", 1))
    got = [await store.get_request(r.msg_id) for r in (odd, plain, runs)]
    assert [r.input if r else None for r in got] == ["print(2)", "", ""]
    assert [r.input for r in await store.session_requests("s1")] == ["print(2)", "", ""]


async def test_user_bytes_counts_everything_a_user_stored(store: Store) -> None:
    """Tests that user_bytes counts, beside output, each of the user's requests (its message
    and its input), layouts, permalinks and delivery positions, by their bytes (a user with
    no session too), and none of another user's; a deleted layout stops counting."""
    code = "x = 1  # " + "c" * 50_000
    assert await store.user_bytes("ann") == 0
    request = await store.add_request(execute(code=code, user="ann"))
    after_request = await store.user_bytes("ann")
    assert after_request is not None and 50_000 < after_request < 51_000  # the code once
    stored = await store.get_request(request.msg_id)
    assert stored is not None and stored.input == code  # given back from its message
    await store.put_layout("ann", "ws", [{"id": "1", "type": "code", "code": "l" * 30_000}])
    await store.add_permalink(PermalinkRecord("p1", "p" * 20_000, None, "ann", 1.0))
    await store.put_delivery("ann", "ws", "c" * 100, "s1", 7)
    total = await store.user_bytes("ann")
    assert total is not None and after_request + 50_100 < total < after_request + 51_000
    assert await store.user_bytes("bob") == 0
    await store.put_layout("bob", "ws", [{"id": "1", "type": "code", "code": "b" * 10_000}])
    bob = await store.user_bytes("bob")
    assert bob is not None and 10_000 < bob < 10_200  # a user with layouts only
    await store.delete_layout("ann", "ws")
    assert await store.user_bytes("ann") == total - 30_000 - (
        len('[{"id": "1", "type": "code", "code": ""}]'))


async def test_append_and_update(store: Store) -> None:
    """Tests that output and the status changes it shows are stored together, in order, and
    that an update not allowed (or of an unknown request) gives None instead of failing; each
    update gives the request's progress as stored."""
    req = await store.add_request(execute())
    busy, idle = jmsg("status", parent=req.msg_id), jmsg("status", parent=req.msg_id)
    seqs, updated = await store.append_and_update(
        [("s1", busy), ("s1", idle)],
        [(req.msg_id, WORKING, None), (req.msg_id, ERROR, "Boom: no"),
         (req.msg_id, DONE, None), ("nope", WORKING, None)])
    assert seqs == [1, 2]
    assert [u.status if u else None for u in updated] == [WORKING, ERROR, None, None]
    got = await store.get_request(req.msg_id)
    assert got is not None and Progress.of(got) == updated[1] and got.error == "Boom: no"
    assert got.started is not None and got.finished is not None
    assert [m for _, m in await store.messages("s1")] == [busy, idle]
    assert await store.append_and_update([], []) == ([], [])
    assert (await store.append_and_update([("s1", jmsg("stream"))], []))[0] == [3]


async def test_receipts_are_stored_with_the_output(store: Store, store_url: str) -> None:
    """Tests that each device's receipt (epoch, last record stored) is written with the
    output it covers, replaced by later ones, and read back whole, also after a reopen."""
    assert await store.receipts() == {}
    await store.append_and_update([("s1", jmsg("stream"))], [], {"d1": ("e1", 1)})
    await store.append_and_update([("s1", jmsg("stream"))], [],
                                  {"d1": ("e1", 3), "d2": ("f", 7)})
    await store.put_receipts({"d2": ("g", 1)})
    assert await store.receipts() == {"d1": ("e1", 3), "d2": ("g", 1)}
    assert [seq for seq, _ in await store.messages("s1")] == [1, 2]
    async with open_store(store_url) as again:
        assert await again.receipts() == {"d1": ("e1", 3), "d2": ("g", 1)}


async def test_add_session_request(store: Store) -> None:
    """Tests that a request and its session's record are stored together, and that a
    duplicate request raises as add_request does."""
    rec = SessionRecord("s1", "ann", "ws", "d1", "open", 100.0, 100.0)
    req = execute()
    stored = await store.add_session_request(rec, req)
    assert stored.created > 0 and await store.get_request(req.msg_id) == stored
    assert await store.get_session("s1") == rec
    with pytest.raises(DuplicateRequest):
        await store.add_session_request(replace(rec, last_activity=200.0),
                                        replace(execute("6"), msg_id=req.msg_id))
    assert await store.get_request(req.msg_id) == stored


async def test_add_session_request_stamps_what_it_queues_behind(store: Store) -> None:
    """Tests that with a stamp, the message stored and returned is the stamp's, given the
    session's newest unfinished request of the same kind: none of another session's, an
    interact's or a finished one, and None when there is none."""
    rec = SessionRecord("s1", "ann", "ws", "d1", "open", 100.0, 100.0)
    seen: list[str | None] = []

    def stamp(latest: str | None) -> dict[str, Any]:
        seen.append(latest)
        return {**jmsg("execute_request"), "metadata": {"behind": latest}}

    first = await store.add_session_request(rec, execute("1"), stamp)
    assert seen == [None] and first.message["metadata"] == {"behind": None}
    assert await store.get_request(first.msg_id) == first
    await store.add_request(execute("9", session="s2"))
    await store.add_request(interact("i1", 1))
    second = await store.add_session_request(rec, execute("2"), stamp)
    assert seen[-1] == first.msg_id
    await store.update_request(second.msg_id, WORKING, device="d1")
    third = await store.add_session_request(rec, execute("3"), stamp)
    assert seen[-1] == second.msg_id
    stored = await store.get_request(third.msg_id)
    assert stored is not None and stored.message["metadata"] == {"behind": second.msg_id}
    for request in (first, second, third):
        await store.update_request(request.msg_id, ERROR)
    await store.add_session_request(rec, execute("4"), stamp)
    assert seen[-1] is None


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
    assert await store.sessions("open", newest=1) == [c]
    assert await store.sessions(newest=2) == [b, c]


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


# -- users ----------------------------------------------------------------------------------


async def test_users_add_find_by_token_remove(store: Store) -> None:
    """Tests put_user/get_user/user_by_token/users/remove_user: a removed user's token is
    found no more."""
    bob = UserRecord("bob", "b" * 64, 10.0)
    alice = UserRecord("alice", "a" * 64, 11.0)
    await store.put_user(bob)
    await store.put_user(alice)
    assert await store.users() == [alice, bob]
    assert await store.get_user("alice") == alice and await store.get_user("carol") is None
    assert await store.user_by_token("a" * 64) == alice
    assert await store.user_by_token("c" * 64) is None
    assert await store.remove_user("alice") is True
    assert await store.remove_user("alice") is False
    assert await store.user_by_token("a" * 64) is None
    assert await store.users() == [bob]


async def test_user_token_replaced(store: Store) -> None:
    """Tests that putting a user again replaces their token: the old one is found no more."""
    await store.put_user(UserRecord("ann", "1" * 64, 1.0))
    await store.put_user(UserRecord("ann", "2" * 64, 2.0))
    assert await store.user_by_token("1" * 64) is None
    assert await store.user_by_token("2" * 64) == UserRecord("ann", "2" * 64, 2.0)
    assert await store.users() == [UserRecord("ann", "2" * 64, 2.0)]


async def test_users_seen_by_a_second_store(store_url: str) -> None:
    """Tests that a user added through one store object (``bin/cellbus user add``) is found
    at once through another open on the same store (the broker's), and its removal too."""
    async with open_store(store_url) as broker, open_store(store_url) as cli:
        assert await broker.user_by_token("d" * 64) is None
        await cli.put_user(UserRecord("dan", "d" * 64, 3.0))
        assert await broker.user_by_token("d" * 64) == UserRecord("dan", "d" * 64, 3.0)
        assert await cli.remove_user("dan") is True
        assert await broker.user_by_token("d" * 64) is None


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


# -- retention ------------------------------------------------------------------------------

FILE_MIME = "application/x-cellbus-file+json"


async def evaluated(store: Store, cell_id: str, run: list[tuple[str, dict[str, Any]]], *,
                    session: str = "s1", status: str = DONE,
                    kind: Callable[..., Request] | None = None) -> Request:
    """A finished request of ``cell_id`` whose output is ``run``: (msg_type, content) pairs,
    status busy first and idle last; the messages also carry buffers where content has
    ``_buffers``."""
    req = await store.add_request((kind or execute)(cell_id, session=session))
    await store.update_request(req.msg_id, WORKING, device="d1")
    items = [(session, jmsg("status", session=session, parent=req.msg_id,
                            content={"execution_state": "busy"}))]
    for msg_type, content in run:
        buffers = content.pop("_buffers", None)
        items.append((session, jmsg(msg_type, session=session, parent=req.msg_id,
                                    content=content, buffers=buffers)))
    items.append((session, jmsg("status", session=session, parent=req.msg_id,
                                content={"execution_state": "idle"})))
    for item in items:  # one at a time, as the broker's batches often are
        await store.append_messages([item])
    return await store.update_request(req.msg_id, status)


def out(text: str, name: str = "stdout") -> tuple[str, dict[str, Any]]:
    return "stream", {"name": name, "text": text}


def image(n: int) -> tuple[str, dict[str, Any]]:
    return "display_data", {"data": {"image/png": f"{n:04d}" * 500}, "metadata": {}}


REPLY = ("execute_reply", {"status": "ok", "execution_count": 1})


async def output_of(store: Store, req: Request) -> tuple[Any, ...]:
    """What /update?since=0 is made of: the fold of the request's messages."""
    from protocol.fold import fold
    folded = fold(await store.messages(req.session, parent=req.msg_id))
    return folded.blocks(), folded.seq, folded.changed, [
        folded.reset_after(s) for s in range(folded.seq + 1)]


async def finished_session(store: Store, session: str = "s1", *,
                           last_activity: float = 1000.0) -> None:
    await store.put_session(SessionRecord(session, "ann", "ws", "d1", "open", 900.0,
                                          last_activity))


async def test_compaction_keeps_each_cells_final_output(store: Store) -> None:
    """Tests that compacting a finished session keeps what each cell's latest evaluation
    folds to (blocks, block ids and seqs, clears), drops earlier evaluations and noise,
    merges stream runs, keeps a shown file at its seq, and never reuses a seq."""
    await finished_session(store)
    first = await evaluated(store, "5", [out("old\n"), REPLY])
    final = await evaluated(store, "5", [
        ("execute_input", {"code": "x", "execution_count": 2}),
        *[out(f"line {i}\n") for i in range(20)], out("oops\n", "stderr"), out("more\n"),
        image(1), ("execute_result", {"data": {"text/plain": "42"}, "metadata": {}}), REPLY])
    frames = []
    for i in range(6):
        frames += [("clear_output", {"wait": True}), image(i)]
    animation = await evaluated(store, "6", [*frames, out("done\n"), REPLY])
    file_ref = {"name": "a.bin", "size": 3, "mime": "application/octet-stream"}
    with_file = await evaluated(store, "7", [
        ("display_data", {"data": {FILE_MIME: file_ref}, "metadata": {}, "_buffers": [b"abc"]}),
        REPLY])
    failed = await evaluated(store, "8", [("error", {"ename": "E", "evalue": "v",
                                                     "traceback": ["E: v"]}),
                                          ("execute_reply", {"status": "error"})],
                             status=ERROR)
    await store.append_messages([("s1", jmsg("shutdown_reply", parent="not-a-request"))])
    kept = [final, animation, with_file, failed]
    before = [await output_of(store, r) for r in kept]
    all_before = await store.messages("s1")
    file_seq = next(s for s, m in all_before if m["content"].get("data", {}).get(FILE_MIME))
    last = await store.last_seq("s1")

    stats = await store.compact(time.time() + 1)

    assert [await output_of(store, r) for r in kept] == before
    assert stats.sessions == 1 and stats.requests_removed == 1 and stats.bytes_freed > 0
    assert stats.messages_removed > 0 and stats.messages_rewritten > 0 and not stats.failed
    after = await store.messages("s1")
    seqs = [s for s, _ in after]
    assert seqs == sorted(set(seqs)) and set(seqs) <= {s for s, _ in all_before}
    assert len(after) == len(all_before) - stats.messages_removed
    assert len(after) < len(all_before) // 2
    assert await store.get_request(first.msg_id) is None
    assert await store.messages("s1", parent=first.msg_id) == []
    assert all(m["msg_type"] != "shutdown_reply" for _, m in after)
    latest = await store.cell_request("ann", "ws", "5")
    assert latest is not None and latest.msg_id == final.msg_id
    [(seq, kept_file)] = await store.messages("s1", since=file_seq - 1, limit=1)
    assert seq == file_seq and kept_file["buffers"] == [b"abc"]
    assert await store.last_seq("s1") == last
    assert await store.append_messages([("s1", jmsg("stream"))]) == [last + 1]


async def test_compaction_leaves_unfinished_sessions(store: Store) -> None:
    """Tests that a session with a running or waiting request, a recent last activity or a
    recent last message is not compacted, and that compacting twice changes nothing."""
    await finished_session(store, "busy")
    await evaluated(store, "1", [out("a\n"), out("b\n"), REPLY], session="busy")
    running = await store.add_request(execute("2", session="busy"))
    await store.update_request(running.msg_id, WORKING, device="d1")
    await finished_session(store, "waiting")
    await evaluated(store, "1", [out("a\n"), out("b\n"), REPLY], session="waiting")
    await store.add_request(execute("2", session="waiting"))
    await finished_session(store, "recent", last_activity=time.time() + 3600)
    await evaluated(store, "1", [out("a\n"), out("b\n"), REPLY], session="recent")
    await finished_session(store, "idle")
    await evaluated(store, "1", [out("a\n"), out("b\n"), REPLY], session="idle")
    sizes = {s: len(await store.messages(s)) for s in ("busy", "waiting", "recent", "idle")}

    assert (await store.compact(time.time() - 60)).sessions == 0  # messages are too new
    assert (await store.compact(time.time() + 1)).sessions == 1
    assert len(await store.messages("idle")) < sizes.pop("idle")
    assert {s: len(await store.messages(s)) for s in sizes} == sizes
    assert (await store.compact(time.time() + 1)).sessions == 0


async def test_compaction_of_a_session_used_again(store: Store) -> None:
    """Tests that a compacted session that runs again is compacted again: the cell's newer
    evaluation replaces the kept one, and seqs go on from the session's last."""
    await finished_session(store)
    old = await evaluated(store, "5", [out("1\n"), out("2\n"), REPLY])
    assert (await store.compact(time.time() + 1)).sessions == 1
    last = await store.last_seq("s1")
    new = await evaluated(store, "5", [out("3\n"), out("4\n"), REPLY])
    assert [s for s, _ in await store.messages("s1", parent=new.msg_id)][0] == last + 1
    before = await output_of(store, new)
    stats = await store.compact(time.time() + 1)
    assert stats.sessions == 1 and stats.requests_removed == 1
    assert await store.get_request(old.msg_id) is None
    assert await output_of(store, new) == before
    assert (await store.compact(time.time() + 1)).sessions == 0


async def test_compaction_keeps_the_last_run_of_each_interact(store: Store) -> None:
    """Tests that an interact cell keeps its evaluation whole (nested output folds the
    same) and only the last finished run of each interact; older and superseded runs go."""
    await finished_session(store)
    start = ("interact_start", {"interact_id": "f", "controls": {"n": {"type": "slider"}},
                                "layout": ["n"]})
    cell = await evaluated(store, "5", [start, out("n=1\n"), out("!\n"), image(1),
                                        ("interact_end", {}), REPLY])

    def run(state: int) -> Callable[..., Request]:
        return lambda cell_id, session: interact("f", state, session=session)

    reply = ("interact_reply", {"status": "ok", "state": 0})
    runs = [await evaluated(store, "5", [out(f"n={n}\n"), out("!\n"), reply], kind=run(n))
            for n in (2, 3)]
    superseded = await store.add_request(interact("f", 4))
    await store.update_request(superseded.msg_id, SUPERSEDED)
    before = [await output_of(store, r) for r in (cell, runs[1])]

    stats = await store.compact(time.time() + 1)

    assert stats.sessions == 1 and stats.requests_removed == 2
    assert [await output_of(store, r) for r in (cell, runs[1])] == before
    assert await store.get_request(runs[0].msg_id) is None
    assert await store.get_request(superseded.msg_id) is None
    assert await store.messages("s1", parent=runs[0].msg_id) == []


async def test_delivery_positions_per_client(store: Store) -> None:
    """A Jupyter channels client's last delivered (session, seq) is kept per (user,
    worksheet, client) and replaced by the next; other clients and worksheets are apart."""
    assert await store.delivery("alice", "k1", "tab") is None
    await store.put_delivery("alice", "k1", "tab", "s1", 5)
    await store.put_delivery("alice", "k1", "other", "s1", 2)
    await store.put_delivery("alice", "k1", "tab", "s2", 1)
    assert await store.delivery("alice", "k1", "tab") == ("s2", 1)
    assert await store.delivery("alice", "k1", "other") == ("s1", 2)
    assert await store.delivery("alice", "k2", "tab") is None
    assert await store.delivery("bob", "k1", "tab") is None
async def test_permalinks_are_kept_once_by_id_and_counted_by_owner(store: Store,
                                                                   store_url: str) -> None:
    """Tests that a permalink is stored once per id (a second with the same id is not
    added), read back whole (interact state with any keys), counted per owner, and kept
    by another store opened on the same URL (a broker restart)."""
    interact = {"$n": 3, "a.b": [1, "x"], "nested": {"k": None}}
    first = PermalinkRecord("abc123", "print('shared')", interact, "ann", 1.5)
    assert await store.add_permalink(first) is True
    assert await store.add_permalink(replace(first, code="other")) is False
    assert await store.add_permalink(PermalinkRecord("def456", "1+1", None, "ann", 2.0))
    assert await store.add_permalink(PermalinkRecord("ghi789", "2+2", None, "", 3.0))
    assert await store.get_permalink("abc123") == first
    assert (await store.get_permalink("def456")).interact is None  # type: ignore[union-attr]
    assert await store.get_permalink("nope") is None
    assert await store.count_permalinks("ann") == 2
    assert await store.count_permalinks("") == 1
    assert await store.count_permalinks("bob") == 0
    async with open_store(store_url) as again:
        assert await again.get_permalink("abc123") == first


async def test_deleting_a_worksheet_removes_its_runs_and_nothing_else(store: Store) -> None:
    """Tests that delete_worksheet removes the worksheet's requests (execute and interact),
    the messages of its sessions (an earlier, closed one too), its layout and delivery
    positions, and counts them; its session records stay, as do seqs (the next message
    goes on from the last), another worksheet's and another user's runs, and what the
    user keeps drops by what was deleted. Nothing stored: an empty count."""
    keep = await store.add_request(execute(session="s3", worksheet="other"))
    theirs = await store.add_request(execute(session="s4", user="bob"))
    for session, user, worksheet, state in (("s1", "ann", "ws", "closed"),
                                            ("s2", "ann", "ws", "open"),
                                            ("s3", "ann", "other", "open"),
                                            ("s4", "bob", "ws", "open")):
        await store.put_session(SessionRecord(session, user, worksheet, None, state, 1.0, 1.0))
    runs = [await store.add_request(execute(session=s, cell_id=c, code="c" * 10_000))
            for s, c in (("s1", "1"), ("s2", "1"), ("s2", "2"))]
    runs.append(await store.add_request(interact("i1", 1, session="s2")))
    for run in runs:
        await store.update_request(run.msg_id, WORKING)
        await store.update_request(run.msg_id, DONE)
    await store.append_messages([(r.session, jmsg("stream", parent=r.msg_id, session=r.session,
                                                  content={"text": "o" * 5_000}))
                                 for r in [*runs, keep, theirs]])
    await store.put_layout("ann", "ws", [{"id": "1", "type": "code", "code": "l" * 1_000}])
    await store.put_delivery("ann", "ws", "tab", "s2", 3)
    before = await store.user_bytes("ann")
    assert before is not None and before > 4 * 5_000 + 3 * 10_000
    deleted = await store.delete_worksheet("ann", "ws")
    assert deleted == DeletedRuns(requests=4, messages=4, layout=True, deliveries=1)
    for run in runs:
        assert await store.get_request(run.msg_id) is None
    assert await store.cell_request("ann", "ws", "1") is None
    assert await store.worksheet_cells("ann", "ws") == set()
    assert await store.messages("s1") == [] and await store.messages("s2") == []
    assert await store.get_layout("ann", "ws") is None
    assert await store.delivery("ann", "ws", "tab") is None
    assert (await store.get_session("s2")) is not None  # records stay
    assert await store.last_seq("s2") == 3  # and seqs are never given out again
    assert await store.append_messages([("s2", jmsg("status"))]) == [4]
    assert await store.get_request(keep.msg_id) is not None
    assert await store.get_request(theirs.msg_id) is not None
    assert len(await store.messages("s3")) == 1 and len(await store.messages("s4")) == 1
    after = await store.user_bytes("ann")
    assert after is not None and before - after > 4 * 5_000 + 3 * 10_000
    assert after < 30_000  # what is left: the other worksheet, and one status message
    assert (await store.delete_worksheet("ann", "ws")) == DeletedRuns(0, 1, False, 0)
    assert (await store.delete_worksheet("ann", "ws")).nothing  # type: ignore[union-attr]
    assert (await store.delete_worksheet("nobody", "ws")).nothing  # type: ignore[union-attr]


async def test_a_worksheet_with_many_messages_is_deleted_a_part_at_a_time(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that delete_worksheet deletes every message of a session that has more than a
    part's worth (here 3 a part, 10 messages), the last one's seq included, and counts
    them all; another session's stay."""
    from broker.store import _worksheet_rows
    monkeypatch.setattr(_worksheet_rows, "MESSAGES_AT_ONCE", 3)
    await store.put_session(SessionRecord("s1", "ann", "ws", None, "closed", 1.0, 1.0))
    await store.append_messages([(s, jmsg("stream", session=s)) for s in ["s1"] * 10 + ["s2"]])
    deleted = await store.delete_worksheet("ann", "ws")
    assert deleted is not None and deleted.messages == 10
    assert await store.messages("s1") == [] and len(await store.messages("s2")) == 1


async def test_a_deletion_stopped_after_its_first_write_is_marked_and_finished_later(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that delete_worksheet's first write marks the worksheet's sessions (an open one
    too) ``deleting``, so that none is open while its messages go, and a store that stops
    before the last part (here: the first part fails) leaves them so, findable by
    ``sessions(DELETING)``; finish_deletion of each deletes the messages left and closes
    it, and touches nothing else: not a session of another worksheet, nor a run the
    worksheet made since in a new session."""
    from broker.store import _mongo_tx, _worksheet_rows
    monkeypatch.setattr(_worksheet_rows, "MESSAGES_AT_ONCE", 3)
    for session, worksheet, state in (("s1", "ws", "closed"), ("s2", "ws", "open"),
                                      ("s3", "other", "open")):
        await store.put_session(SessionRecord(session, "ann", worksheet, None, state, 1.0, 1.0))
    run = await store.add_request(execute(session="s2"))
    await store.update_request(run.msg_id, WORKING)
    await store.update_request(run.msg_id, DONE)
    await store.append_messages([(s, jmsg("stream", session=s))
                                 for s in ["s1"] * 4 + ["s2"] * 5 + ["s3"]])

    async def stopped(*args: object) -> int:
        raise StoreError("the broker stopped here")

    for module in (_worksheet_rows, _mongo_tx):
        monkeypatch.setattr(module, "delete_in_parts", stopped)
    with pytest.raises(StoreError):
        await store.delete_worksheet("ann", "ws")
    monkeypatch.undo()
    monkeypatch.setattr(_worksheet_rows, "MESSAGES_AT_ONCE", 3)
    assert await store.find_session("ann", "ws") is None
    assert await store.get_request(run.msg_id) is None
    assert len(await store.messages("s2")) == 5  # what a restarted broker finds
    await store.put_session(SessionRecord("s5", "ann", "ws", None, "open", 2.0, 2.0))
    later = await store.add_request(execute(session="s5", cell_id="9"))
    await store.append_messages([("s5", jmsg("stream", session="s5", parent=later.msg_id))])
    left = sorted(r.session for r in await store.sessions(DELETING))
    assert left == ["s1", "s2"]
    assert [await store.finish_deletion(s) for s in left] == [4, 5]
    assert await store.messages("s1") == [] and await store.messages("s2") == []
    assert await store.sessions(DELETING) == []
    assert {r.session: r.state for r in await store.sessions()} == {
        "s1": CLOSED, "s2": CLOSED, "s3": OPEN, "s5": OPEN}
    assert await store.get_request(later.msg_id) is not None
    assert len(await store.messages("s5")) == 1 and len(await store.messages("s3")) == 1


@pytest.mark.parametrize("status", [NEEDS_WORK, WORKING])
async def test_a_worksheet_with_an_unfinished_run_is_not_deleted(store: Store,
                                                                  status: str) -> None:
    """Tests that delete_worksheet deletes nothing, and says so (None), while a request of
    the worksheet is queued or running, even one of a closed session."""
    await store.put_session(SessionRecord("s1", "ann", "ws", None, "closed", 1.0, 1.0))
    done = await store.add_request(execute(cell_id="1"))
    await store.update_request(done.msg_id, WORKING)
    await store.update_request(done.msg_id, DONE)
    live = await store.add_request(execute(cell_id="2"))
    if status == WORKING:
        await store.update_request(live.msg_id, WORKING)
    await store.append_messages([("s1", jmsg("stream", parent=done.msg_id))])
    await store.put_layout("ann", "ws", [{"id": "1", "type": "code", "code": ""}])
    assert await store.delete_worksheet("ann", "ws") is None
    assert await store.get_request(done.msg_id) is not None
    assert len(await store.messages("s1")) == 1
    assert await store.get_layout("ann", "ws") is not None
    await store.update_request(live.msg_id, ERROR if status == NEEDS_WORK else DONE)
    deleted = await store.delete_worksheet("ann", "ws")
    assert deleted == DeletedRuns(requests=2, messages=1, layout=True, deliveries=0)


async def test_a_permalink_is_deleted_by_its_owner_only(store: Store) -> None:
    """Tests that delete_permalink removes a permalink only when the owner named is its
    owner (an anonymous one by no one), and that it stops counting for them."""
    await store.add_permalink(PermalinkRecord("p1", "p" * 20_000, None, "ann", 1.0))
    await store.add_permalink(PermalinkRecord("p2", "anonymous", None, "", 1.0))
    before = await store.user_bytes("ann")
    assert await store.delete_permalink("p1", "bob") is False
    assert await store.delete_permalink("p2", "ann") is False
    assert await store.get_permalink("p1") is not None
    assert await store.delete_permalink("p1", "ann") is True
    assert await store.get_permalink("p1") is None
    assert await store.delete_permalink("p1", "ann") is False
    assert await store.count_permalinks("ann") == 0
    assert await store.user_bytes("ann") == before - 20_000  # type: ignore[operator]
    assert await store.get_permalink("p2") is not None

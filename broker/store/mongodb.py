"""The MongoDB store, on pymongo's native async client (``pymongo.AsyncMongoClient``).

URL: ``mongodb://[user:password@]host[:port][,host...]/db[?replicaSet=NAME&w=...]`` or
``mongodb+srv://``; the database defaults to ``cellbus``, the write concern to ``majority``
on a replica set (see :func:`~broker.store._mongo_url.client_options`). Reads always go to
the primary, so a broker reads what it just wrote.

Collections mirror the channels: ``requests``, ``messages``, ``sessions``, ``devices``, plus
``seqs`` (one counter per session), ``counters`` (the requests' creation order) and ``users``
(token hashes for ``--auth token``); the collections other than requests, messages and
sessions are in mixins of their own (``_mongo_users``, ``_mongo_devices``,
``_mongo_permalinks``, ``_layout_rows``). Messages,
request messages and device info are msgpack blobs, as in the SQLite store: bytes stay bytes
and keys with dots or ``$`` are data, not operators; only the indexed fields are top-level.

Creation order is a ``counters`` document incremented with ``$inc`` once per request: a
total order across brokers, unlike ObjectIds (ordered only by second across processes); a
broker dying between the ``$inc`` and the insert only skips a number. Status changes are
conditional updates (``{"msg_id": id, "status": old}``), so two brokers never both make one.

Seqs (:mod:`._mongo_append`): one task per store ``$inc``s each session's ``seqs`` counter
for a whole batch of appends, then inserts the messages. On a replica set or sharded cluster
both commit in ONE transaction: gap-free whatever the number of brokers, and no seq visible
before a lower one of its session. A standalone server has no transactions: the ``$inc`` is
still atomic, so seqs never repeat, but a broker that dies or loses the server between the
``$inc`` and the insert leaves a gap (those seqs are never stored), and with several brokers
a reader may briefly see seq N+1 before N. Run a replica set (one member is enough).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, Final

from bson.errors import BSONError
from pymongo import AsyncMongoClient, ReadPreference, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from . import _mongo_lease as _lease
from . import _mongo_orphans as _orphans
from . import _mongo_retention as _retention
from . import _user_bytes
from ._layout_rows import MongoLayouts
from ._mongo_permalinks import MongoPermalinks
from ._mongo_schema import create_schema
from ._mongo_users import MongoUsers
from ._mongo_devices import MongoDevices
from ._mongo_worksheets import MongoWorksheets
from ._mongo_interacts import MongoInteracts
from ._mongo_docs import (_REQUEST_FIELDS, _SESSION_FIELDS, _blob, _loads,
                          _request, _session)
from ._mongo_append import Appender, Row, Then
from ._mongo_tx import _progress, _put_receipts, _update
from ._mongo_reach import CHECK, reach, why
from ._mongo_url import CONNECT_TIMEOUT, client_options, database_name, public_url
from ._rows import check_limit, header_facts, stored_input
from ._writer import MAX_BATCH, MAX_PENDING
from .base import Message, Receipts, StatusUpdate, Store
from .compaction import CompactionStats, SessionPlan
from .errors import (DuplicateRequest, InvalidTransition, StoreClosed, StoreError,
                     UnknownRequest)
from .records import (ANY, EXECUTE_REQUEST, NEEDS_WORK, OPEN, STATUSES,
                      WORKING, DeviceFilter, Progress, Request, SessionRecord)

Doc = dict[str, Any]
Database = AsyncDatabase[Doc]

_DB_ERRORS: Final = (PyMongoError, BSONError, OverflowError)


class MongoStore(MongoPermalinks, MongoLayouts, MongoUsers, MongoDevices, MongoWorksheets,
                 MongoInteracts, Store):
    """The MongoDB store; ``max_batch`` messages per append transaction, ``max_pending``
    appends queued before :class:`StoreFull`."""

    def __init__(self, url: str, *, max_batch: int = MAX_BATCH,
                 max_pending: int = MAX_PENDING, connect_timeout: float = CONNECT_TIMEOUT
                 ) -> None:
        super().__init__(url)
        #: Seconds :meth:`open` waits for the server's first answer (:mod:`._mongo_reach`).
        self.connect_timeout = connect_timeout
        self.database = database_name(url)
        self.options = client_options(url)
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.transactions: bool | None = None  # known once open: replica set or mongos
        self._where = public_url(url)
        self._client: AsyncMongoClient[Doc] | None = None
        self._db: Database | None = None
        self._appender: Appender | None = None

    def describe(self) -> str:
        concern = ", ".join(f"{k}={v}" for k, v in self.options.items() if k != "appname")
        seqs = {None: "", True: ", seqs in transactions",
                False: ", no transactions (standalone server)"}[self.transactions]
        return (f"MongoDB {self._where} (database {self.database!r}, "
                f"{concern or 'write concern from the URL'}{seqs})")

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        if self._db is not None:
            return
        try:
            client: AsyncMongoClient[Doc] = AsyncMongoClient(self.url, **self.options)
        except (PyMongoError, ValueError, TypeError) as e:
            raise StoreError(f"bad MongoDB store URL {self._where}: {e}") from None
        appender: Appender | None = None
        try:
            hello = await reach(client, self.url, self.connect_timeout)
            self.transactions = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
            db = client.get_database(self.database, read_preference=ReadPreference.PRIMARY)
            await create_schema(db)
            if self.transactions:
                await _orphans.end_orphans(db)
            appender = Appender(client, db, transactions=self.transactions, where=self._where,
                                max_batch=self.max_batch, max_pending=self.max_pending)
            if appender.session_id is not None:
                await _orphans.note(db, appender.session_id)
        except BaseException as e:
            if appender is not None:
                await appender.stop()
            await client.close()
            if isinstance(e, _DB_ERRORS):  # the topology dump stays in __cause__
                raise StoreError(
                    f"cannot open the MongoDB store {self._where}: {why(e)}. {CHECK}") from e
            raise
        self._client, self._db, self._appender = client, db, appender

    async def close(self) -> None:
        client, appender = self._client, self._appender
        if client is None or appender is None:
            return
        db, self._db = self._db, None  # new calls refuse from now on
        try:
            await appender.stop()  # every queued append committed (or failed)
            if db is not None and appender.session_id is not None:  # nothing left open
                with contextlib.suppress(*_DB_ERRORS):
                    await _orphans.forget(db, appender.session_id)
        finally:
            self._client, self._appender = None, None
            await client.close()

    # -- the one broker (broker/store/_mongo_lease.py) ---------------------------------------

    async def claim(self, holder: dict[str, Any]) -> None:
        db = self._open_db()
        with self._errors("claim the database for this broker"):
            await _lease.claim(db, holder)

    async def keep_claim(self, owner: str) -> bool:
        db = self._open_db()
        with self._errors("renew this broker's claim"):
            return await _lease.beat(db, owner)

    async def release_claim(self, owner: str) -> None:
        db = self._open_db()
        with self._errors("give up this broker's claim"):
            await _lease.release(db, owner)

    def _open_db(self) -> Database:
        if self._db is None:
            raise StoreClosed(f"store {self._where} is closed")
        return self._db

    def _failed(self, e: BaseException, doing: str) -> BaseException:
        if isinstance(e, _DB_ERRORS):
            return StoreError(f"MongoDB store {self._where} failed to {doing}: {e}")
        return e

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn a pymongo or BSON error into :class:`StoreError` naming the store."""
        try:
            yield
        except _DB_ERRORS as e:
            raise self._failed(e, doing) from e

    # -- requests ---------------------------------------------------------------------------

    async def add_request(self, req: Request) -> Request:
        if req.status not in STATUSES:
            raise ValueError(f"unknown status {req.status!r}; one of {sorted(STATUSES)}")
        db = self._open_db()
        doc = {name: getattr(req, name) for name in _REQUEST_FIELDS}
        doc["message"] = _blob(req.message, f"request {req.msg_id!r}")
        doc["input"] = stored_input(req)
        doc["created"] = req.created or time.time()
        with self._errors(f"store request {req.msg_id!r}"):
            counter = await db.counters.find_one_and_update(
                {"_id": "requests"}, {"$inc": {"last": 1}}, upsert=True,
                return_document=ReturnDocument.AFTER)
            doc["order"] = (counter or {}).get("last")
            try:
                await db.requests.insert_one(doc)
            except DuplicateKeyError:
                raise DuplicateRequest(req.msg_id) from None
        return replace(req, created=doc["created"])

    async def update_request(self, msg_id: str, status: str, *, device: str | None = None,
                             error: str | None = None) -> Request:
        db = self._open_db()
        with self._errors(f"update request {msg_id!r}"):
            return await _update(db, msg_id, status, device, error, None)

    async def assign_request(self, msg_id: str, device: str) -> Request:
        db = self._open_db()
        with self._errors(f"assign request {msg_id!r}"):
            new = await db.requests.find_one_and_update(
                {"msg_id": msg_id, "status": NEEDS_WORK}, {"$set": {"device": device}},
                return_document=ReturnDocument.AFTER)
            if new is not None:
                return _request(new)
            old = await db.requests.find_one({"msg_id": msg_id}, {"status": 1})
        if old is None:
            raise UnknownRequest(msg_id)
        raise InvalidTransition(msg_id, str(old.get("status")), NEEDS_WORK, frozenset())

    async def get_request(self, msg_id: str) -> Request | None:
        db = self._open_db()
        with self._errors(f"read request {msg_id!r}"):
            doc = await db.requests.find_one({"msg_id": msg_id})
        return None if doc is None else _request(doc)

    async def cell_request(self, user: str, worksheet: str, cell_id: str) -> Request | None:
        db = self._open_db()
        with self._errors(f"read cell {user}/{worksheet}/{cell_id}"):
            doc = await db.requests.find_one(
                {"user": user, "worksheet": worksheet, "cell_id": cell_id,
                 "msg_type": EXECUTE_REQUEST}, sort=[("order", -1)])
        return None if doc is None else _request(doc)

    async def worksheet_cells(self, user: str, worksheet: str) -> set[str]:
        db = self._open_db()
        with self._errors(f"read the cells of {user}/{worksheet}"):
            return set(await db.requests.distinct("cell_id", {
                "user": user, "worksheet": worksheet, "msg_type": EXECUTE_REQUEST}))

    async def requests(self, status: str, *, device: DeviceFilter = ANY,
                       limit: int | None = None) -> list[Request]:
        check_limit(limit)
        db = self._open_db()
        query: Doc = {"status": status}
        if device is not ANY:
            query["device"] = device
        if limit == 0:  # pymongo reads limit 0 as "no limit"
            return []
        with self._errors(f"list {status} requests"):
            cursor = db.requests.find(query).sort("order", 1).limit(limit or 0)
            return [_request(doc) for doc in await cursor.to_list()]

    async def unfinished_requests(self, session: str) -> list[Request]:
        db = self._open_db()
        with self._errors(f"list the unfinished requests of session {session!r}"):
            docs = await db.requests.find({"session": session, "status": {
                "$in": [NEEDS_WORK, WORKING]}}).sort("order", 1).to_list()
        return [_request(doc) for doc in docs]

    # -- messages ---------------------------------------------------------------------------

    async def append_messages(self, items: Sequence[tuple[str, Message]]) -> list[int]:
        if not items:
            return []
        return (await self._append(items, None))[0]

    async def append_and_update(self, items: Sequence[tuple[str, Message]],
                                updates: Sequence[StatusUpdate], receipts: Receipts | None = None,
                                ) -> tuple[list[int], list[Progress | None]]:
        """In the append's transaction on a replica set (or sharded cluster): a broker
        killed meanwhile stores all or nothing, so a device's resent record is never stored
        twice. On a standalone server, the same writes one after another."""
        db = self._open_db()

        async def then(session: AsyncClientSession | None) -> list[Progress | None]:
            updated: list[Progress | None] = []
            for msg_id, status, error in updates:
                try:
                    updated.append(await _progress(db, msg_id, status, error, session))
                except (InvalidTransition, UnknownRequest):
                    updated.append(None)
            if receipts:
                await _put_receipts(db, receipts, session)
            return updated

        if not (items or updates or receipts):
            return [], []
        return await self._append(items, then)

    async def _append(self, items: Sequence[tuple[str, Message]],
                      then: Then | None) -> tuple[list[int], Any]:
        self._open_db()
        appender = self._appender
        if appender is None:
            raise StoreClosed(f"store {self._where} is closed")
        now = time.time()
        rows = [Row(session, *header_facts(msg), now, _blob(msg, f"a message of {session!r}"))
                for session, msg in items]
        return await appender.append(rows, then)

    async def messages(self, session: str, *, since: int = 0, parent: str | None = None,
                       limit: int | None = None) -> list[tuple[int, Message]]:
        check_limit(limit)
        db = self._open_db()
        query: Doc = {"session": session, "seq": {"$gt": since}}
        if parent is not None:
            query["parent"] = parent
        if limit == 0:
            return []
        with self._errors(f"read messages of session {session!r}"):
            docs = await db.messages.find(query, {"seq": 1, "data": 1}).sort(
                "seq", 1).limit(limit or 0).to_list()
        return [(int(doc.get("seq", 0)), _loads(doc.get("data"), f"message of {session!r}"))
                for doc in docs]

    async def last_seq(self, session: str) -> int:
        db = self._open_db()
        with self._errors(f"read the last seq of session {session!r}"):
            doc = await db.seqs.find_one({"_id": session})
        last = None if doc is None else doc.get("last")
        return last if isinstance(last, int) else 0

    async def user_bytes(self, user: str) -> int | None:
        db = self._open_db()
        with self._errors(f"count the bytes user {user!r} keeps"):
            return await _user_bytes.mongo_total(db, user)

    # -- sessions ---------------------------------------------------------------------------

    async def put_session(self, rec: SessionRecord) -> None:
        db = self._open_db()
        values = {name: getattr(rec, name) for name in _SESSION_FIELDS}
        with self._errors(f"store session {rec.session!r}"):
            await db.sessions.update_one({"session": rec.session}, {"$set": values},
                                         upsert=True)

    async def get_session(self, session: str) -> SessionRecord | None:
        db = self._open_db()
        with self._errors(f"read session {session!r}"):
            doc = await db.sessions.find_one({"session": session})
        return None if doc is None else _session(doc)

    async def find_session(self, user: str, worksheet: str) -> SessionRecord | None:
        db = self._open_db()
        with self._errors(f"find the session of {user}/{worksheet}"):
            doc = await db.sessions.find_one(
                {"user": user, "worksheet": worksheet, "state": OPEN},
                sort=[("created", -1), ("_id", -1)])
        return None if doc is None else _session(doc)

    async def sessions(self, state: str | None = None, *,
                       newest: int | None = None) -> list[SessionRecord]:
        check_limit(newest)
        db = self._open_db()
        query = {} if state is None else {"state": state}
        with self._errors("list sessions"):
            if newest is None:
                docs = await db.sessions.find(query).sort([("created", 1), ("_id", 1)]).to_list()
            else:
                docs = await db.sessions.find(query).sort(
                    [("created", -1), ("_id", -1)]).limit(newest).to_list()
                docs.reverse()
        return [_session(doc) for doc in docs]

    # -- retention (._mongo_retention) -------------------------------------------------------

    async def finished_sessions(self, before: float, *, limit: int) -> list[tuple[str, int]]:
        with self._errors("find finished sessions"):
            return await _retention.finished_sessions(self._open_db(), before, limit)

    async def session_requests(self, session: str) -> list[Request]:
        db = self._open_db()
        with self._errors(f"list the requests of session {session!r}"):
            docs = await db.requests.find({"session": session}).sort("order", 1).to_list()
        return [_request(doc) for doc in docs]

    async def apply_compaction(self, plan: SessionPlan) -> CompactionStats:
        with self._errors(f"compact session {plan.session!r}"):
            return await _retention.apply(self._open_db(), plan,
                                          lambda msg: _blob(msg, "a compacted message"),
                                          time.time())

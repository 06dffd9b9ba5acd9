"""The MongoDB store's appender: one task that gives messages their seqs and stores them.

Like the SQLite store's group-committing writer (:mod:`._writer`): callers queue their
``append_messages`` items; the appender takes everything queued (up to ``max_batch``
messages and :data:`BATCH_BYTES`), ``$inc``s each session's ``seqs`` counter once by its
count, inserts the messages with the seqs so taken, and settles every caller. On a replica
set or sharded cluster the counters and the inserts commit in ONE transaction: no gaps, and
no seq visible before a lower one of its session, whatever the number of brokers (a broker
that touches the same counter meanwhile gets a write conflict and pymongo's
``with_transaction`` retries it). A batch stores or fails as a whole; the failures a single
message can cause (encoding, size) are raised to its caller before it is queued.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pymongo import AsyncMongoClient, ReadPreference, ReturnDocument
from pymongo.errors import DuplicateKeyError
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from .errors import StoreClosed, StoreError, StoreFull

Doc = dict[str, Any]
#: Packed message bytes per transaction (a batch always takes at least one caller's items).
BATCH_BYTES: Final = 16 * 1024 * 1024


@dataclass
class Row:
    """One message to append, packed, with the fields its indexes need."""

    session: str
    parent: str | None
    msg_type: str | None
    created: float
    data: bytes


#: Writes to make in the append's transaction after its messages (None outside one):
#: ``then(session)``, whose result the caller gets with its seqs.
Then = Callable[[AsyncClientSession | None], Awaitable[Any]]


@dataclass
class _Job:
    """One caller's append, waiting for its seqs (and the result of its ``then``)."""

    rows: list[Row]
    size: int
    done: asyncio.Future[tuple[list[int], Any]]
    then: Then | None = None


class Appender:
    """Queues appends and commits them in batches from one task (started here)."""

    def __init__(self, client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc], *,
                 transactions: bool, where: str, max_batch: int, max_pending: int) -> None:
        self.client, self.db, self.transactions = client, db, transactions
        self.where, self.max_batch, self.max_pending = where, max_batch, max_pending
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._closed = False
        #: One logical session for every transaction: its id is noted (._mongo_orphans) so
        #: that a successor can end a transaction this broker leaves open if it is killed.
        self._session = client.start_session() if transactions else None
        self.session_id: Mapping[str, Any] | None = (
            None if self._session is None else self._session.session_id)
        self._task = asyncio.create_task(self._run(), name=f"cellbus-store-appender {where}")

    async def append(self, rows: list[Row], then: Then | None = None) -> tuple[list[int], Any]:
        """Store ``rows`` (and make the writes of ``then``, in the same transaction on a
        replica set); their seqs, in order, and what ``then`` returned, once committed."""
        if self._closed:
            raise StoreClosed(f"store {self.where} is closed")
        if self._queue.qsize() >= self.max_pending:
            raise StoreFull(f"{self._queue.qsize()} appends are waiting for MongoDB "
                            f"{self.where}; retry later")
        job = _Job(rows, sum(len(r.data) for r in rows),
                   asyncio.get_running_loop().create_future(), then)
        self._queue.put_nowait(job)
        return await job.done

    async def stop(self) -> None:
        """Commit every queued append, then end the task; stopping twice is a no-op."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)
        try:
            await self._task
        finally:
            if self._session is not None:
                await self._session.end_session()

    async def _run(self) -> None:
        batch: list[_Job] = []
        try:
            stop = False
            while not stop:
                first = await self._queue.get()
                if first is None:
                    return
                batch, rows, size = [first], len(first.rows), first.size
                while not self._queue.empty() and rows < self.max_batch and size < BATCH_BYTES:
                    job = self._queue.get_nowait()
                    if job is None:
                        stop = True
                        break
                    batch.append(job)
                    rows, size = rows + len(job.rows), size + job.size
                await self._commit(batch)
                batch = []
        finally:  # cancelled: nobody waits forever
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if job is not None:
                    batch.append(job)
            for job in batch:
                if not job.done.done():
                    job.done.set_exception(StoreClosed(f"store {self.where} was closed"))

    async def _commit(self, batch: list[_Job]) -> None:
        rows = [row for job in batch for row in job.rows]
        results: list[Any] = []

        async def write(session: AsyncClientSession | None) -> list[int]:
            seqs = await self._insert(rows, session)
            results[:] = [job.then and await job.then(session) for job in batch]
            return seqs

        try:
            if self._session is not None:
                seqs = await self._session.with_transaction(
                    write, read_preference=ReadPreference.PRIMARY)
            else:
                seqs = await write(None)
        except Exception as e:
            for job in batch:
                if not job.done.done():
                    job.done.set_exception(
                        e if isinstance(e, StoreError) else
                        StoreError(f"MongoDB store {self.where} failed to store messages: {e}"))
            return
        start = 0
        for job, result in zip(batch, results):
            if not job.done.done():
                job.done.set_result((seqs[start:start + len(job.rows)], result))
            start += len(job.rows)

    async def _take(self, name: str, n: int,
                    session: AsyncClientSession | None) -> dict[str, Any] | None:
        """Add ``n`` to the session's counter; the counter after, or None if it has none.
        (Not an upsert: two writers upserting one new counter at once can both miss it.)"""
        return await self.db.seqs.find_one_and_update(
            {"_id": name}, {"$inc": {"last": n}}, return_document=ReturnDocument.AFTER,
            session=session)

    async def _insert(self, rows: list[Row], session: AsyncClientSession | None) -> list[int]:
        """Take each session's next seqs with ``$inc``, then insert ``rows`` with them."""
        nxt: dict[str, int] = {}
        for name, n in Counter(row.session for row in rows).items():
            counter = await self._take(name, n, session)
            if counter is None:  # the session's first messages: make its counter, then take
                try:
                    await self.db.seqs.update_one({"_id": name}, {"$setOnInsert": {"last": 0}},
                                                  upsert=True, session=session)
                except DuplicateKeyError:  # another writer made it just now
                    if session is not None:
                        raise  # in a transaction: with_transaction runs it all again
                counter = await self._take(name, n, session)
            last = (counter or {}).get("last")
            if not isinstance(last, int):
                raise StoreError(f"the seq counter of session {name!r} in {self.where} is not "
                                 "a number: something other than cellbus wrote it")
            nxt[name] = last - n + 1
        seqs: list[int] = []
        docs: list[Doc] = []
        for row in rows:
            seq = nxt[row.session]
            nxt[row.session] = seq + 1
            seqs.append(seq)
            docs.append({"session": row.session, "seq": seq, "parent": row.parent,
                         "msg_type": row.msg_type, "created": row.created, "data": row.data})
        if docs:
            await self.db.messages.insert_many(docs, ordered=True, session=session)
        return seqs

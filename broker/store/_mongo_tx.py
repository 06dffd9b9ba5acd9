"""Writes of the MongoDB store that may run inside an append's transaction.

:meth:`~broker.store.mongodb.MongoStore.append_and_update` makes them in the same transaction
as the messages they go with (on a replica set); alone, they run with no session.
:meth:`~broker.store.mongodb.MongoStore.delete_worksheet` runs :func:`_delete_worksheet` as
an append of no messages, so it too is one transaction on a replica set.
"""

from __future__ import annotations

import time
from dataclasses import fields
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from ._mongo_docs import _request
from ._worksheet_rows import delete_in_parts
from .base import Receipts
from .errors import StoreError, UnknownRequest
from .records import (CLOSED, DELETING, FINAL, NEEDS_WORK, WORKING, DeletedRuns, Progress,
                      Request, check_transition)

Doc = dict[str, Any]
Database = AsyncDatabase[Doc]
_PROGRESS_FIELDS = tuple(f.name for f in fields(Progress))


async def _update(db: Database, msg_id: str, status: str, device: str | None,
                  error: str | None, session: AsyncClientSession | None) -> Request:
    """:meth:`MongoStore.update_request`, in ``session``'s transaction if it has one."""
    return _request(await _move(db, msg_id, status, device, error, session, None))


async def _progress(db: Database, msg_id: str, status: str, error: str | None,
                    session: AsyncClientSession | None) -> Progress:
    """An update of ``append_and_update``: only the fields a move changes are read back,
    not the request's message."""
    doc = await _move(db, msg_id, status, None, error, session, _PROGRESS_FIELDS)
    return Progress(str(doc["msg_id"]), str(doc["status"]), doc.get("device"),
                    doc.get("started"), doc.get("finished"), doc.get("error"))


async def _move(db: Database, msg_id: str, status: str, device: str | None,
                error: str | None, session: AsyncClientSession | None,
                only: tuple[str, ...] | None) -> Doc:
    """Move request ``msg_id`` to ``status``; its document after (only the fields ``only``
    names, if given)."""
    for _ in range(2):  # once more if another broker moved it between read and write
        doc = await db.requests.find_one({"msg_id": msg_id}, {"status": 1}, session=session)
        if doc is None:
            raise UnknownRequest(msg_id)
        old = str(doc.get("status"))
        check_transition(msg_id, old, status)
        now = time.time()
        change: Doc = {"status": status, "finished": now if status in FINAL else None}
        if status == WORKING:
            change["started"] = now
        elif status == NEEDS_WORK:  # hand-back: unplaced unless a device is named
            change["started"] = change["device"] = None
        if device is not None:
            change["device"] = device
        if error is not None:
            change["error"] = error
        new: Doc | None = await db.requests.find_one_and_update(
            {"msg_id": msg_id, "status": old}, {"$set": change},
            projection=None if only is None else {name: 1 for name in only},
            return_document=ReturnDocument.AFTER, session=session)
        if new is not None:
            return new
    raise StoreError(f"request {msg_id!r} kept changing status while being moved to "
                     f"{status}; another broker is updating it")


async def _put_receipts(db: Database, receipts: Receipts,
                        session: AsyncClientSession | None) -> None:
    """:meth:`MongoStore.put_receipts`, in ``session``'s transaction if it has one."""
    for device, (epoch, stored) in receipts.items():
        await db.receipts.update_one({"device": device}, {"$set": {
            "epoch": epoch, "stored": stored}}, upsert=True, session=session)


async def _delete_worksheet(db: Database, user: str, worksheet: str,
                            session: AsyncClientSession | None
                            ) -> tuple[DeletedRuns, list[str]] | None:
    """The first step of :meth:`MongoStore.delete_worksheet`, in ``session``'s transaction if
    it has one: the worksheet's requests, layout and deliveries (None, and nothing deleted,
    if a run of it is unfinished), and its sessions, whose messages
    :func:`_delete_sessions` removes next, a part at a time, marked ``deleting`` until
    :func:`_deleted` closes each (as the SQLite store does, see
    :mod:`._worksheet_rows`: a transaction of a million deletions would hold every other
    write, and pass a transaction's limits). Each query reads an index: requests and
    sessions by (user, worksheet), deliveries by (user, worksheet, client), the layout by
    its ``_id``."""
    key = {"user": user, "worksheet": worksheet}
    if await db.requests.find_one({**key, "status": {"$in": [NEEDS_WORK, WORKING]}},
                                  {"_id": 1}, session=session) is not None:
        return None
    sessions = await db.sessions.distinct("session", key, session=session)
    await db.sessions.update_many(key, {"$set": {"state": DELETING}}, session=session)
    requests = (await db.requests.delete_many(key, session=session)).deleted_count
    layout = (await db.layouts.delete_one({"_id": key}, session=session)).deleted_count
    deliveries = (await db.deliveries.delete_many(key, session=session)).deleted_count
    return DeletedRuns(requests, 0, bool(layout), deliveries), [str(s) for s in sessions]


async def _delete_messages(db: Database, session: str, at_most: int) -> int:
    """Up to ``at_most`` of ``session``'s messages, the oldest (by its (session, seq)
    index); how many."""
    last = await db.messages.find({"session": session}, {"seq": 1}).sort("seq", 1).skip(
        at_most - 1).limit(1).to_list()
    query: dict[str, Any] = {"session": session}
    if last:
        query["seq"] = {"$lte": last[0]["seq"]}
    return int((await db.messages.delete_many(query)).deleted_count)


async def _deleted(db: Database, session: str) -> None:
    """The last step of a session's deletion: marked ``deleting``, it is closed."""
    await db.sessions.update_one({"session": session, "state": DELETING},
                                 {"$set": {"state": CLOSED}})


async def _delete_sessions(db: Database, sessions: list[str]) -> int:
    """The messages of ``sessions`` (marked ``deleting``), a part at a time, each session
    closed after its last: how many (:meth:`MongoStore.delete_worksheet` and
    :meth:`MongoStore.finish_deletion`)."""
    return await delete_in_parts(
        sessions, lambda session, at_most: _delete_messages(db, session, at_most),
        lambda session: _deleted(db, session))

"""Retention on the MongoDB store: finding finished sessions and applying compaction plans.

The same contract as the SQLite store (:mod:`.compaction` decides what goes). Each step is
its own write, safe to repeat: a broker that dies half-way leaves a log that folds to the
same output, and the next pass finishes the job. ``compactions`` holds, per session
(``_id``), the seq it was compacted through. WiredTiger reuses the space of deleted
documents by itself, so there is nothing to reclaim (``compact`` is an operator's command).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from .compaction import CompactionStats, SessionPlan
from .records import FINAL, NEEDS_WORK, WORKING

Doc = dict[str, Any]
#: Seqs deleted or rewritten per write when applying a plan.
PLAN_CHUNK: Final = 2000


async def finished_sessions(db: AsyncDatabase[Doc], before: float, limit: int
                            ) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    cursor = db.sessions.find({"last_activity": {"$lt": before}}, {"session": 1}).sort(
        [("last_activity", 1), ("session", 1)])
    async for doc in cursor:
        session = doc.get("session")
        counter = await db.seqs.find_one({"_id": session})
        last = (counter or {}).get("last")
        if not isinstance(session, str) or not isinstance(last, int):
            continue
        done = await db.compactions.find_one({"_id": session})
        if last <= int((done or {}).get("through", 0)):
            continue
        if await db.requests.find_one({"session": session,
                                       "status": {"$in": [NEEDS_WORK, WORKING]}}, {"_id": 1}):
            continue
        newest = await db.messages.find_one({"session": session, "seq": last}, {"created": 1})
        if newest is not None and float(newest.get("created", 0)) >= before:
            continue
        out.append((session, last))
        if len(out) >= limit:
            break
    return out


async def apply(db: AsyncDatabase[Doc], plan: SessionPlan, blob: Callable[[Any], bytes],
                now: float) -> CompactionStats:
    stats = CompactionStats()
    session, through = plan.session, plan.through
    if plan.drop_requests:
        dropped = {"msg_id": {"$in": plan.drop_requests}, "status": {"$in": sorted(FINAL)}}
        async for doc in db.requests.find(dropped, {"message": 1}):
            stats.bytes_freed += len(doc.get("message") or b"")
        stats.requests_removed = (await db.requests.delete_many(dropped)).deleted_count
    known = [doc["msg_id"] async for doc in db.requests.find({"session": session},
                                                              {"msg_id": 1})]
    orphans = {"session": session, "seq": {"$lte": through}, "parent": {"$nin": known}}
    stats.add(await _delete(db, orphans))
    for i in range(0, len(plan.delete), PLAN_CHUNK):
        stats.add(await _delete(db, {"session": session, "seq": {
            "$lte": through, "$in": plan.delete[i:i + PLAN_CHUNK]}}))
    items = sorted(plan.rewrite.items())
    for i in range(0, len(items), PLAN_CHUNK):
        chunk = [(seq, blob(msg)) for seq, msg in items[i:i + PLAN_CHUNK] if seq <= through]
        old = {doc["seq"]: len(doc.get("data") or b"") async for doc in db.messages.find(
            {"session": session, "seq": {"$in": [seq for seq, _ in chunk]}},
            {"seq": 1, "data": 1})}
        ops = [UpdateOne({"session": session, "seq": seq}, {"$set": {"data": data}})
               for seq, data in chunk if seq in old]
        if ops:
            stats.messages_rewritten += (await db.messages.bulk_write(
                ops, ordered=False)).matched_count
            stats.bytes_freed += sum(old[seq] - len(data) for seq, data in chunk if seq in old)
    await db.compactions.update_one({"_id": session}, {"$max": {"through": through},
                                                       "$set": {"at": now}}, upsert=True)
    stats.sessions = 1
    return stats


async def _delete(db: AsyncDatabase[Doc], query: Doc) -> CompactionStats:
    size = 0
    async for doc in db.messages.find(query, {"data": 1}):
        size += len(doc.get("data") or b"")
    removed = (await db.messages.delete_many(query)).deleted_count
    return CompactionStats(messages_removed=removed, bytes_freed=size)

"""Transactions a killed broker left open, ended by the broker that comes after it.

A MongoDB server does not abort a transaction when its client's connections close: one left
open by a broker that was SIGKILLed (or lost its machine) mid-append holds its write locks,
among them the ``seqs`` counters of the sessions it was storing, until the server reaps it
after ``transactionLifetimeLimitSeconds`` (60 s by default). Every append to those sessions
meanwhile gets a write conflict and is retried: the broker that replaces it would stall
for up to a minute, and its devices would look lost.

So each broker's appender runs its transactions in one logical session of its own and notes
it in the ``brokers`` collection with its host and pid. A broker opening its store first ends
(``killSessions``, which aborts their transactions) the sessions noted by brokers of its host
whose process is gone, then notes its own; on a clean close it removes its note. A broker
that died on another machine is not detected here: there the server's own limit applies.
Ending one's own user's sessions needs no privilege beyond ``readWrite``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from protocol.processes import is_running

Doc = dict[str, Any]


async def end_orphans(db: AsyncDatabase[Doc]) -> int:
    """End the logical sessions (and so the transactions) of this host's dead brokers;
    their number."""
    host = socket.gethostname()
    dead = [doc async for doc in db.brokers.find({"host": host})
            if not is_running(doc.get("pid"))]
    if dead:
        try:
            await db.client.admin.command("killSessions", [{"id": d["_id"]} for d in dead])
        except OperationFailure as e:
            if e.code != 59:  # CommandNotFound: a server without sessions has no transactions
                raise
        await db.brokers.delete_many({"_id": {"$in": [d["_id"] for d in dead]}})
    return len(dead)


async def note(db: AsyncDatabase[Doc], session_id: Mapping[str, Any]) -> None:
    """Note this broker's logical session, for its successor on this host."""
    await db.brokers.update_one({"_id": session_id["id"]}, {"$set": {
        "host": socket.gethostname(), "pid": os.getpid()}}, upsert=True)


async def forget(db: AsyncDatabase[Doc], session_id: Mapping[str, Any]) -> None:
    """Remove this broker's note: it closed cleanly, nothing of it is left open."""
    await db.brokers.delete_one({"_id": session_id["id"]})

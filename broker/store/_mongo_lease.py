"""One broker per MongoDB database: a lease that the broker beats and a second one reads.

Two brokers on one database each take the other's running cells for orphans of a broker
that restarted and end them with ``DeviceLost``, and each opens sessions for worksheets the
other serves (a store has one broker: :mod:`broker.sessions`). A SQLite file is held with a
lock that goes with its process (:mod:`broker.store_owner`); a database on another machine
knows no process, so the broker that holds the database says so by beating: one document
in ``broker_lease`` names it (host, pid) and carries a ``beat`` it raises every
:data:`~broker.store.base.CLAIM_RENEWAL` seconds. A broker that finds the lease held reads
it again :data:`OBSERVE` seconds later: a beat that moved is a live broker, and this one
stops at start with one line naming it; one that stood still is a broker that died
(``kill -9``, its machine lost), and is taken over, as is at once one of this host whose
process is gone. Beats are counted, not timed, so the two machines' clocks need not agree.
A holder that finds its lease taken (it was frozen, or cut off from the database, for
longer than :data:`OBSERVE` while another started) stops. A broker that stops cleanly gives
the lease up.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from protocol.processes import is_running

from .base import CLAIM_RENEWAL
from .errors import StoreClaimed

Doc = dict[str, Any]
#: The lease's one document.
KEY = "broker"
#: Seconds a broker starting watches a held lease's beat before it takes the lease over.
OBSERVE = 4 * CLAIM_RENEWAL


def _holder(doc: Doc) -> str:
    return (f"the broker of pid {doc.get('pid')} on {doc.get('host')} (since "
            f"{doc.get('since', '?')})")


async def claim(db: AsyncDatabase[Doc], holder: Doc, *, observe: float = OBSERVE) -> None:
    """Make ``holder`` ({owner, host, pid, since}) the database's broker, or raise
    :class:`StoreClaimed` naming the live broker that is."""
    leases = db.broker_lease
    while True:
        doc = await leases.find_one({"_id": KEY})
        if doc is None:
            try:
                await leases.insert_one({"_id": KEY, **holder, "beat": 0})
                return
            except DuplicateKeyError:
                continue  # another broker claimed it meanwhile: look at it
        if doc.get("owner") == holder["owner"]:
            return
        gone = doc.get("host") == socket.gethostname() and not is_running(doc.get("pid"))
        if not gone:
            await asyncio.sleep(observe)
            again = await leases.find_one({"_id": KEY})
            if again is None:
                continue
            if (again.get("owner"), again.get("beat")) != (doc.get("owner"), doc.get("beat")):
                raise StoreClaimed(f"the database is in use by {_holder(again)}")
        taken = await leases.update_one(
            {"_id": KEY, "owner": doc.get("owner"), "beat": doc.get("beat")},
            {"$set": {**holder, "beat": 0}})
        if taken.matched_count:
            return


async def beat(db: AsyncDatabase[Doc], owner: str) -> bool:
    """Raise ``owner``'s beat; False if the lease is no longer its own."""
    done = await db.broker_lease.update_one({"_id": KEY, "owner": owner}, {"$inc": {"beat": 1}})
    return done.matched_count == 1


async def release(db: AsyncDatabase[Doc], owner: str) -> None:
    """Give the lease up, if ``owner`` still holds it."""
    await db.broker_lease.delete_one({"_id": KEY, "owner": owner})

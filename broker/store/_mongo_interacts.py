"""An interact's requests in the MongoDB store, as a mixin of
:class:`~broker.store.mongodb.MongoStore`: superseding the ones still waiting when a newer
state comes (seed 001), and reading its latest runs (a cell's view folded from the store)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from ._mongo_docs import _request
from ._rows import check_limit
from .records import INTERACT_REQUEST, NEEDS_WORK, SUPERSEDED, Request


class MongoInteracts:
    _open_db: Callable[[], Any]
    _errors: Callable[[str], contextlib.AbstractContextManager[None]]

    async def interact_runs(self, session: str, interact_id: str, *, after: str,
                            before: str | None = None, limit: int = 32) -> list[Request]:
        check_limit(limit)
        db = self._open_db()
        with self._errors(f"list the runs of interact {interact_id!r}"):
            bounds: dict[str, Any] = {}
            for op, msg_id in (("$gt", after), ("$lt", before)):
                if msg_id is not None:
                    doc = await db.requests.find_one({"msg_id": msg_id}, {"order": 1})
                    if doc is None:
                        return []
                    bounds[op] = doc["order"]
            if limit == 0:  # pymongo reads limit 0 as "no limit"
                return []
            docs = await db.requests.find(
                {"session": session, "interact_id": interact_id,
                 "msg_type": INTERACT_REQUEST, "order": bounds},
            ).sort("order", -1).limit(limit).to_list()
        return [_request(doc) for doc in docs]

    async def supersede_pending(self, session: str, interact_id: str, state: int) -> list[str]:
        db = self._open_db()
        superseded: list[str] = []
        with self._errors(f"supersede requests of interact {interact_id!r}"):
            pending = await db.requests.find(
                {"session": session, "interact_id": interact_id, "status": NEEDS_WORK,
                 "msg_type": INTERACT_REQUEST, "state": {"$lt": state}},
                {"msg_id": 1}).sort("order", 1).to_list()
            now = time.time()
            for doc in pending:  # one by one: only those this call moved are reported
                done = await db.requests.update_one(
                    {"_id": doc["_id"], "status": NEEDS_WORK},
                    {"$set": {"status": SUPERSEDED, "finished": now}})
                if done.modified_count:
                    superseded.append(str(doc.get("msg_id")))
        return superseded

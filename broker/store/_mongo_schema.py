"""The MongoDB store's collections and their indexes, made when a broker opens the store."""

from __future__ import annotations

import contextlib
from typing import Any, Final

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from ._mongo_permalinks import INDEXES as _PERMALINK_INDEXES
from ._mongo_users import INDEXES as _USER_INDEXES

Database = AsyncDatabase[dict[str, Any]]

_INDEXES: Final = {
    "requests": [
        IndexModel([("msg_id", 1)], unique=True),
        IndexModel([("user", 1), ("worksheet", 1), ("cell_id", 1), ("msg_type", 1),
                    ("order", -1)]),  # cell_request
        IndexModel([("status", 1), ("device", 1), ("order", 1)]),  # requests(device=...)
        IndexModel([("status", 1), ("order", 1)]),  # requests(device=ANY)
        # unfinished_requests, supersede_pending (replaced session_1_interact_id_1_status_1)
        IndexModel([("session", 1), ("status", 1), ("order", 1)]),
        IndexModel([("session", 1), ("interact_id", 1), ("order", -1)]),  # interact_runs
    ],
    "messages": [IndexModel([("session", 1), ("seq", 1)], unique=True),
                 IndexModel([("session", 1), ("parent", 1), ("seq", 1)])],
    "sessions": [IndexModel([("session", 1)], unique=True),
                 IndexModel([("user", 1), ("worksheet", 1), ("state", 1)]),
                 IndexModel([("state", 1), ("created", 1)]),  # sessions(OPEN)
                 IndexModel([("last_activity", 1)])],  # finished_sessions
    "devices": [IndexModel([("device", 1)], unique=True)],
    "receipts": [IndexModel([("device", 1)], unique=True)],
    "deliveries": [IndexModel([("user", 1), ("worksheet", 1), ("client", 1)], unique=True)],
    "users": _USER_INDEXES,  # (._mongo_users)
    "seqs": [],  # {_id: session, last: int}
    "counters": [],  # {_id: "requests", last: int}
    "compactions": [],  # {_id: session, through: int, at: float} (._mongo_retention)
    "brokers": [IndexModel([("host", 1)])],  # {_id: lsid, host, pid} (._mongo_orphans)
    "permalinks": _PERMALINK_INDEXES,  # (._mongo_permalinks)
    # {_id: {user, worksheet}, cells, updated} (._layout_rows); by user for --user-layouts
    "layouts": [IndexModel([("_id.user", 1)])],
}
#: The index (session, status, order) replaced; dropped when a broker opens an older store.
_REPLACED_INDEX: Final = "session_1_interact_id_1_status_1"


async def create_schema(db: Database) -> None:
    """Create the collections and indexes that are missing (several brokers may race)."""
    existing = set(await db.list_collection_names())
    for name, indexes in _INDEXES.items():
        if name not in existing:
            try:
                await db.create_collection(name, check_exists=False)
            except OperationFailure as e:
                if e.code != 48:  # NamespaceExists: another broker just made it
                    raise
        if indexes:
            await db[name].create_indexes(indexes)
    with contextlib.suppress(OperationFailure):  # not there (any more): nothing to drop
        await db.requests.drop_index(_REPLACED_INDEX)

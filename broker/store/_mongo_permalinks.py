"""The ``permalinks`` collection of the MongoDB store, as a mixin of
:class:`~broker.store.mongodb.MongoStore`: ``{_id: id, code, interact (JSON text or None:
any keys a control may have are safe in it), owner, created}``."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

from pymongo import IndexModel
from pymongo.errors import DuplicateKeyError

from .records import PermalinkRecord

INDEXES = [IndexModel([("owner", 1)])]


class MongoPermalinks:
    _open_db: Callable[[], Any]
    _errors: Callable[[str], contextlib.AbstractContextManager[None]]

    async def add_permalink(self, rec: PermalinkRecord) -> bool:
        doc = {"_id": rec.id, "code": rec.code, "owner": rec.owner, "created": rec.created,
               "interact": None if rec.interact is None else json.dumps(rec.interact)}
        with self._errors(f"store permalink {rec.id!r}"):
            try:
                await self._open_db().permalinks.insert_one(doc)
            except DuplicateKeyError:
                return False
        return True

    async def get_permalink(self, permalink_id: str) -> PermalinkRecord | None:
        with self._errors(f"read permalink {permalink_id!r}"):
            doc = await self._open_db().permalinks.find_one({"_id": permalink_id})
        if doc is None:
            return None
        interact = doc.get("interact")
        return PermalinkRecord(doc["_id"], doc["code"], json.loads(interact) if interact else
                               None, doc["owner"], doc["created"])

    async def count_permalinks(self, owner: str) -> int:
        with self._errors("count permalinks"):
            return int(await self._open_db().permalinks.count_documents({"owner": owner}))

    async def delete_permalink(self, permalink_id: str, owner: str) -> bool:
        with self._errors(f"delete permalink {permalink_id!r}"):
            result = await self._open_db().permalinks.delete_one(
                {"_id": permalink_id, "owner": owner})
        return bool(result.deleted_count)

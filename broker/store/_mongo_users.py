"""The ``users`` collection of the MongoDB store, as a mixin of
:class:`~broker.store.mongodb.MongoStore`: ``{name, token_hash, created}``, one per user a
token names (``bin/cellbus user``); the token itself is never stored."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from pymongo import IndexModel

from ._mongo_docs import _user
from .records import UserRecord

INDEXES = [IndexModel([("name", 1)], unique=True),
           IndexModel([("token_hash", 1)], unique=True)]


class MongoUsers:
    _open_db: Callable[[], Any]
    _errors: Callable[[str], contextlib.AbstractContextManager[None]]

    async def put_user(self, rec: UserRecord) -> None:
        db = self._open_db()
        values = {"name": rec.name, "token_hash": rec.token_hash, "created": rec.created}
        with self._errors(f"store user {rec.name!r}"):
            await db.users.update_one({"name": rec.name}, {"$set": values}, upsert=True)

    async def get_user(self, name: str) -> UserRecord | None:
        db = self._open_db()
        with self._errors(f"read user {name!r}"):
            doc = await db.users.find_one({"name": name})
        return None if doc is None else _user(doc)

    async def user_by_token(self, token_hash: str) -> UserRecord | None:
        db = self._open_db()
        with self._errors("look up a token"):
            doc = await db.users.find_one({"token_hash": token_hash})
        return None if doc is None else _user(doc)

    async def remove_user(self, name: str) -> bool:
        db = self._open_db()
        with self._errors(f"remove user {name!r}"):
            return (await db.users.delete_one({"name": name})).deleted_count > 0

    async def users(self) -> list[UserRecord]:
        db = self._open_db()
        with self._errors("list users"):
            docs = await db.users.find().sort("name", 1).to_list()
        return [_user(doc) for doc in docs]


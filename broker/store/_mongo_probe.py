"""Whether a MongoDB database holds a cellbus store, without making one (see :mod:`.unused`).

A broker's first open of a database makes its collections (:mod:`._mongo_schema`), so a
database without ``requests`` is one no broker has used: a typo in the URL's database name,
most likely. The server's databases that do hold a store are named, when the URL's user may
list them (``listDatabases``; without that right the answer names none).
"""

from __future__ import annotations

from typing import Any, Final

from bson.errors import BSONError
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError

from ._mongo_reach import CHECK, reach, why
from ._mongo_url import CONNECT_TIMEOUT, client_options, database_name, public_url
from .errors import StoreError
from .unused import Unused

Doc = dict[str, Any]
#: The collection whose presence says a broker opened the database.
MARK: Final = "requests"
#: Databases looked into for a store, at most (a shared server may hold many).
MOST: Final = 50
_DB_ERRORS: Final = (PyMongoError, BSONError)


async def _holds_store(db: AsyncDatabase[Doc]) -> bool:
    return bool(await db.list_collection_names(filter={"name": MARK}))


async def _stores(client: AsyncMongoClient[Doc], besides: str) -> list[str]:
    """The names of the server's other databases that hold a cellbus store."""
    try:
        names = await client.list_database_names()
    except OperationFailure:  # not allowed to list them: name none
        return []
    found = []
    for name in [n for n in names if n not in (besides, "admin", "config", "local")][:MOST]:
        try:
            if await _holds_store(client[name]):
                found.append(name)
        except OperationFailure:  # a database this user may not read
            continue
    return found


async def unused_database(url: str, timeout: float = CONNECT_TIMEOUT) -> Unused | None:
    """:class:`Unused` when the URL's database holds no cellbus store, else None.

    Raises :class:`StoreError` (:class:`StoreUnreachable` when no server answered within
    ``timeout`` seconds) in the words
    :meth:`MongoStore.open <broker.store.mongodb.MongoStore.open>` uses.
    """
    name, where = database_name(url), public_url(url)
    try:
        client: AsyncMongoClient[Doc] = AsyncMongoClient(url, **client_options(url))
    except (PyMongoError, ValueError, TypeError) as e:
        raise StoreError(f"bad MongoDB store URL {where}: {e}") from None
    try:
        await reach(client, url, timeout)
        if await _holds_store(client[name]):
            return None
        others = await _stores(client, name)
    except _DB_ERRORS as e:
        raise StoreError(f"cannot open the MongoDB store {where}: {why(e)}. {CHECK}") from e
    finally:
        await client.close()
    hint = ("; the databases with a cellbus store on that server: " + ", ".join(others)
            if others else "; that server holds no other cellbus store the URL's user can see")
    return Unused(f"in database {name!r} on {where}", hint)

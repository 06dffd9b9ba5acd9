"""What one user keeps in the store, in bytes, as both backends count it (``Store.user_bytes``,
the broker's ``--user-output`` budget, :mod:`broker.budget`).

Everything a user's requests make the broker store counts, not only output: the stored
messages of the user's sessions (output, and the ``execute_input`` that echoes each request's
code), the user's requests (the request message and its ``input``: execute and interact
requests, with the Jupyter session facts a first request carries), their worksheet
layouts, the permalinks they own and their Jupyter clients' delivery positions. Each is
counted as stored (a blob's or a text's bytes), so the count read after a restart is the
count the broker kept before it.
"""

from __future__ import annotations

from typing import Any, Final

#: Bytes a delivery row counts beyond its texts: its seq.
DELIVERY_EXTRA: Final = 8

def delivery_size(worksheet: str, client: str, session: str) -> int:
    """Bytes one delivery position counts, as :data:`SQLITE` and :func:`mongo_total` count
    it."""
    return len(f"{worksheet}{client}{session}".encode()) + DELIVERY_EXTRA


#: SQLite: one statement, named parameter ``:user``; LENGTH of a BLOB reads no blob.
SQLITE: Final = f"""SELECT
    (SELECT COALESCE(SUM(LENGTH(m.data)), 0) FROM sessions s JOIN messages m
        ON m.session = s.session WHERE s.user = :user)
  + (SELECT COALESCE(SUM(LENGTH(message) + LENGTH(CAST(input AS BLOB))), 0)
        FROM requests WHERE user = :user)
  + (SELECT COALESCE(SUM(LENGTH(CAST(cells AS BLOB))), 0) FROM layouts WHERE user = :user)
  + (SELECT COALESCE(SUM(LENGTH(CAST(code AS BLOB))
                         + COALESCE(LENGTH(CAST(interact AS BLOB)), 0)), 0)
        FROM permalinks WHERE owner = :user)
  + (SELECT COALESCE(SUM(LENGTH(CAST(worksheet || client || session AS BLOB))
                         + {DELIVERY_EXTRA}), 0) FROM deliveries WHERE user = :user)"""


def _bytes(field: str) -> dict[str, Any]:
    """MongoDB: the bytes of a string or binary field (0 where it is missing or null)."""
    return {"$binarySize": {"$ifNull": [f"${field}", ""]}}


async def mongo_total(db: Any, user: str) -> int:
    """MongoDB: the bytes ``user`` keeps, one aggregation per collection that holds some
    (each on an index by user, or for messages by session); pymongo's errors pass."""
    sums: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("requests", {"user": user}, {"$add": [_bytes("message"), _bytes("input")]}),
        ("layouts", {"_id.user": user}, _bytes("cells")),
        ("permalinks", {"owner": user}, {"$add": [_bytes("code"), _bytes("interact")]}),
        ("deliveries", {"user": user}, {"$add": [_bytes("worksheet"), _bytes("client"),
                                                 _bytes("session"), DELIVERY_EXTRA]}),
    ]
    sessions = await db.sessions.distinct("session", {"user": user})
    if sessions:
        sums.append(("messages", {"session": {"$in": sessions}}, _bytes("data")))
    total = 0
    for collection, match, size in sums:
        found = await (await db[collection].aggregate([
            {"$match": match}, {"$group": {"_id": None, "bytes": {"$sum": size}}},
        ])).to_list()
        total += int(found[0]["bytes"]) if found else 0
    return total

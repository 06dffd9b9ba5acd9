"""The first contact with a MongoDB store's server, bounded: an answer, or one line, in seconds.

pymongo's own default waits 30 s for a server (``serverSelectionTimeoutMS``) and prints
nothing meanwhile, so ``bin/cellbus user list`` on a URL nothing answers was silent for 30 s.
Only the first contact is bounded here (``pymongo.timeout``): once the server has answered,
operations keep pymongo's timeouts, which ride out a replica set's election (10-12 s).
"""

from __future__ import annotations

import re
from typing import Any, Final

import pymongo
from bson.errors import BSONError
from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure, PyMongoError

from ._mongo_url import CONNECT_TIMEOUT, public_url, url_options
from .errors import StoreError, StoreUnreachable

Doc = dict[str, Any]
#: What every error of a store that cannot be opened ends with.
CHECK: Final = ("Check that the server runs and is reachable from this host, and the URL's "
                "hosts, credentials and replicaSet")
#: pymongo's tail of a timeout: the budget it used and the whole topology (kept in __cause__).
_TAIL: Final = re.compile(r" \(configured timeouts: [^)]*\)|, Timeout: .*", re.DOTALL)


def bound(url: str, timeout: float = CONNECT_TIMEOUT) -> float:
    """Seconds the first contact may take: ``timeout``, or less when the URL's own
    ``serverSelectionTimeoutMS`` or ``timeoutMS`` asks for less (``pymongo.timeout`` would
    otherwise override them)."""
    options = url_options(url)
    limits = [timeout]
    for name in ("serverselectiontimeoutms", "timeoutms"):
        try:
            ms = float(options.get(name, ""))
        except ValueError:
            continue
        if ms > 0:
            limits.append(ms / 1000)
    return min(limits)


def why(e: BaseException) -> str:
    """pymongo's words for ``e`` without its timeout tail and topology dump."""
    return _TAIL.sub("", str(e)).strip() or type(e).__name__


def shown(seconds: float) -> str:
    return f"{seconds:g} s"


async def reach(client: AsyncMongoClient[Doc], url: str,
                timeout: float = CONNECT_TIMEOUT) -> Doc:
    """The server's ``hello`` within :func:`bound` seconds.

    Raises :class:`StoreUnreachable` when no server answered in time (it may come up later)
    and :class:`StoreError` for any other failure (credentials, say), both naming the URL
    without its secrets, and what to check.
    """
    seconds, where = bound(url, timeout), public_url(url)
    try:
        with pymongo.timeout(seconds):
            hello: Doc = await client.admin.command("hello")
    except ConnectionFailure as e:  # selection and network timeouts, refused connections
        raise StoreUnreachable(
            f"cannot open the MongoDB store {where}: no answer within {shown(seconds)} "
            f"({why(e)}). {CHECK}") from e
    except (PyMongoError, BSONError) as e:
        raise StoreError(f"cannot open the MongoDB store {where}: {why(e)}. {CHECK}") from e
    return hello

"""What cellbus reads from a ``mongodb://`` store URL, without connecting or importing pymongo.

The URL is pymongo's own connection string; cellbus reads only the database name and decides
the write-concern default. Everything else (hosts, credentials, TLS, timeouts, ``w=``,
``journal=``, ``readConcernLevel=``...) is pymongo's to parse.
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from .errors import UnknownStore

#: The database used when the URL names none (``mongodb://host/`` or ``mongodb://host``).
DEFAULT_DATABASE: Final = "cellbus"
#: Seconds the first contact with the server may take before a store command or a broker's
#: open attempt says it cannot reach it (``bin/cellbus user --timeout``; the URL's own
#: ``serverSelectionTimeoutMS`` when smaller). pymongo alone waits 30 s, silently.
CONNECT_TIMEOUT: Final = 5.0
#: What MongoDB forbids in a database name (plus the empty name).
_BAD_NAME: Final = re.compile(r'[/\\. "$\x00]')
#: URL options whose value is a secret, hidden by :func:`public_url`.
_SECRET: Final = re.compile(r"password|secret|token", re.IGNORECASE)


def _split(url: str) -> tuple[str, str, str, str]:
    """``(scheme, hosts, path, query)`` of a MongoDB URL; userinfo dropped."""
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise UnknownStore(f"cannot parse the MongoDB store URL: {e}") from None
    return parts.scheme.lower(), parts.netloc.rpartition("@")[2], parts.path, parts.query


def url_options(url: str) -> dict[str, str]:
    """The URL's ``?name=value`` options, names lower-cased (MongoDB's are case-insensitive)."""
    options: dict[str, str] = {}
    for pair in re.split(r"[&;]", _split(url)[3]):
        name, _, value = pair.partition("=")
        if name:
            options[unquote(name).lower()] = unquote(value)
    return options


def database_name(url: str) -> str:
    """The database named by the URL's path, else :data:`DEFAULT_DATABASE`.

    Raises :class:`UnknownStore` for a name MongoDB would refuse.
    """
    name = unquote(_split(url)[2].lstrip("/")) or DEFAULT_DATABASE
    if _BAD_NAME.search(name) or len(name.encode()) > 63:
        raise UnknownStore(
            f"{name!r} in {public_url(url)} is not a MongoDB database name: use at most 63 "
            "bytes and none of / \\ . space \" $, e.g. mongodb://host/cellbus")
    return name


def client_options(url: str) -> dict[str, Any]:
    """The options cellbus gives ``AsyncMongoClient`` on top of the URL's own.

    ``appname="cellbus-broker"`` (shown in the server's logs) unless the URL sets ``appName``.
    The write concern is the URL's when it sets ``w`` or ``journal``. Otherwise cellbus asks
    for ``w="majority"`` when the URL names a ``replicaSet`` or is ``mongodb+srv://`` (a
    cluster: a write is acknowledged once a majority of members has it in its journal),
    and for ``journal=True`` on a single server (acknowledged once in the on-disk journal),
    so a write is durable when the store's coroutine returns, as the contract requires.
    """
    options = url_options(url)
    extra: dict[str, Any] = {}
    if "appname" not in options:
        extra["appname"] = "cellbus-broker"
    if "w" in options or "journal" in options:
        return extra
    if "replicaset" in options or _split(url)[0] == "mongodb+srv":
        extra["w"] = "majority"
    else:
        extra["journal"] = True
    return extra


def public_url(url: str) -> str:
    """``url`` without user name, password or secret options: safe for logs and errors."""
    try:
        scheme, hosts, path, query = _split(url)
    except UnknownStore:
        return "<unparseable MongoDB URL>"
    pairs = [p for p in re.split(r"[&;]", query) if p]
    shown = "&".join(f"{p.partition('=')[0]}=***" if _SECRET.search(p) else p for p in pairs)
    return f"{scheme}://{hosts}{path}" + (f"?{shown}" if shown else "")

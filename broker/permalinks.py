"""Code shared by link: ``permalink_request`` stores it, ``permalink_get_request`` reads it,
``permalink_delete_request`` deletes it (its maker only).

A permalink belongs to no session: it is a row of its own in the store (``permalinks``), so
it outlives sessions, retention of their output, and broker restarts. Its id is derived from
what it holds (the first :data:`ID_LENGTH` characters of the base64url HMAC-SHA256 of the
code and interact state), so sharing the same code twice gives the same link and stores nothing
new; the HMAC is keyed with a secret made from the bus key, so that no one can tell from a
guessed piece of code whether someone shared it (a plain hash would give its link). Links
made under another key (or, before, by a plain hash) still open: a link is found by its id.
Each user a token names may make ``--user-permalinks`` of them (:mod:`broker.quotas`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from typing import Any

from .quotas import Quotas
from .refusal import Address, Refused, Reply
from .store import PermalinkRecord, Store


ID_LENGTH = 12
#: Characters of an id (base64url).
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Bytes of code plus interact state one permalink may hold.
MAX_BYTES = 1 * 2**20


def permalink_id(code: str, interact: dict[str, Any] | None, secret: bytes) -> str:
    canonical = json.dumps({"code": code, "interact": interact}, sort_keys=True,
                           separators=(",", ":"))
    digest = hmac.new(secret, canonical.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:ID_LENGTH]


def _maker(msg: Any) -> str:
    """Who a permalink request speaks for: the user a token named, else "" (no one)."""
    facts = msg["metadata"].get("cellbus")
    facts = facts if isinstance(facts, dict) else {}
    user = facts.get("user")
    return user if facts.get("auth") == "token" and isinstance(user, str) else ""


def _size(code: str, interact: dict[str, Any] | None) -> int:
    """Bytes a permalink counts against its owner's ``--user-output``, as the store counts
    them (:mod:`broker.store._user_bytes`)."""
    return len(code.encode()) + (0 if interact is None else len(json.dumps(interact)))


class Permalinks:
    """The broker's permalink handlers (wired in :class:`broker.intake.Intake`)."""

    def __init__(self, store: Store, quotas: Quotas, key: bytes) -> None:
        self.store, self.quotas = store, quotas
        #: What ids are keyed with: made from the bus key, for this use only.
        self.secret = hmac.new(key, b"cellbus permalink ids", hashlib.sha256).digest()

    async def create(self, msg: Any, _: Address) -> Reply:
        content = msg["content"]
        code, interact = content.get("code"), content.get("interact")
        if not isinstance(code, str) or not (interact is None or isinstance(interact, dict)):
            raise Refused(400, 'a permalink needs {"code": "...", "interact": {...} or null}')
        if len(code.encode()) + len(json.dumps(interact)) > MAX_BYTES:
            raise Refused(413, f"a permalink holds at most {MAX_BYTES} bytes")
        owner = _maker(msg)
        pid = permalink_id(code, interact, self.secret)
        store = self.store
        if await store.get_permalink(pid) is None:
            limit = self.quotas.config.user_permalinks
            if owner and limit and await store.count_permalinks(owner) >= limit:
                raise Refused(429, f"quota: {owner} has made {limit} permalinks, the most one "
                                   "user may make (the broker's --user-permalinks)")
            size = _size(code, interact)
            if owner:  # the store counts a permalink for its owner (--user-output)
                await self.quotas.budget.room(owner, size, "permalink")
            if await store.add_permalink(PermalinkRecord(pid, code, interact, owner,
                                                         time.time())) and owner:
                self.quotas.budget.add(owner, size)
        return {"id": pid}, []

    async def get(self, msg: Any, _: Address) -> Reply:
        record = await self._find(msg["content"].get("id"))
        return {"id": record.id, "code": record.code, "interact": record.interact}, []

    async def _find(self, pid: object) -> PermalinkRecord:
        """The permalink ``pid``; 404 (the same words for GET and DELETE) if none."""
        record = None
        if isinstance(pid, str) and ID_PATTERN.fullmatch(pid):
            record = await self.store.get_permalink(pid)
        if record is None:
            raise Refused(404, f"no such permalink {str(pid)[:64]}")
        return record

    async def delete(self, msg: Any, _: Address) -> Reply:
        """Delete a permalink its maker made (by token): what it counted against their
        ``--user-output`` is freed. Anyone else gets 403 saying who may (a link's code is
        no secret: ``GET`` answers it to anyone who has its id), and a link no token made is
        kept for good. A link is one per code: if another user shared the same code later,
        they got this link too, and it is gone for them as well."""
        pid, owner = msg["content"].get("id"), _maker(msg)
        record = await self._find(pid)
        if not record.owner:
            raise Refused(403, "this link was made without a token, so it is kept for good: "
                               "only links a user made with their token can be deleted")
        if record.owner != owner:
            raise Refused(403, "only the user who made this link may delete it (with their "
                               "token)")
        if not await self.store.delete_permalink(pid, owner):
            raise Refused(404, f"no such permalink {pid}")  # deleted meanwhile
        self.quotas.budget.add(owner, -_size(record.code, record.interact))
        return {"id": pid}, []

"""The broker's answer to a gateway's "whose token is this?" (``auth_request``).

Gateways have no store of their own: with ``--auth token`` they ask the broker, sending the
token's SHA-256 (never the token), and cache the answer briefly. The broker reads the store on
every ask, so a user added or removed by ``bin/cellbus user`` counts from the next ask on.
"""

from __future__ import annotations

from typing import Any

from protocol.tokens import TOKEN_HASH
from protocol.wire import Message

from .store import Store


class Auth:
    """Answers ``auth_request`` ``{token_hash}`` with ``{user}`` (None: no such token)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def whose(self, msg: Message, address: Any) -> tuple[dict[str, Any], list[bytes]]:
        digest = msg["content"].get("token_hash")
        if not isinstance(digest, str) or TOKEN_HASH.fullmatch(digest) is None:
            return {"user": None}, []  # a malformed hash names no one
        record = await self.store.user_by_token(digest)
        return {"user": record.name if record is not None else None}, []

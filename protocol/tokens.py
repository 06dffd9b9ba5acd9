"""Access tokens: how they are made, how they are stored, and which user names are valid.

A token is ``secrets.token_urlsafe(32)``: 256 random bits. The store keeps only its SHA-256
(hex), and the gateway asks the broker "whose token hashes to H?", so the token itself never
crosses the bus or rests on disk. A plain, unsalted, fast hash is the right tool here: salts
and slow hashes (bcrypt, argon2) protect low-entropy passwords from dictionary and
precomputed guessing, which cannot succeed against 2**256 random values; a deterministic hash
also lets the store find a token's user with one indexed lookup instead of trying every user.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Final

#: Random bytes in a token (the text is their URL-safe base64, 43 characters).
TOKEN_BYTES: Final = 32
#: Longest token text accepted from a client; anything longer is refused unhashed.
MAX_TOKEN_LENGTH: Final = 256
#: What a user name may look like: it is a path segment of every cell URL (``/home/NAME/``).
USER_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
#: What a stored token hash looks like.
TOKEN_HASH: Final = re.compile(r"[0-9a-f]{64}")


def new_token() -> str:
    """A fresh token with 256 random bits."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """The SHA-256 of ``token`` in hex: what the store keeps and the bus carries."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def valid_user_name(name: str) -> bool:
    """Whether ``name`` can be a user (letters, digits, ``_ . @ -``; up to 64 characters)."""
    return USER_NAME.fullmatch(name) is not None

"""The exceptions of cellbus's store, one per thing a caller acts on differently."""

from __future__ import annotations


def not_implemented(name: str) -> NotImplementedError:
    """What a store contract method a backend does not implement raises: it names itself."""
    return NotImplementedError(f"Store.{name}() is not implemented by this backend")


class StoreError(Exception):
    """Base of every store exception; also raised for a database failure (disk, lock, I/O)."""


class StoreClosed(StoreError):
    """Raised by every call on a store that was never opened or has been closed."""


class StoreFull(StoreError):
    """Raised when more writes are queued than the store's ``max_pending``; retry later."""


class StoreUnwritable(StoreError):
    """Raised when the store cannot write now: its disk is full, read-only or failing. Reads
    still work; the broker refuses new work with 507 until writes succeed again."""


class StoreUnreachable(StoreError):
    """Raised by ``open()`` when the store's server gave no answer within the store's connect
    bound: nothing listens there, or the network drops the packets. Unlike a refusal (bad
    credentials, a bad URL) it may pass, so a broker starting tries again."""


class StoreClaimed(StoreError):
    """Raised by ``claim()`` when another broker, alive, holds the store: one store has one
    broker."""


class UnknownStore(StoreError):
    """Raised by :func:`~broker.store.open_store` for a URL it cannot open; says what to use."""


class DuplicateRequest(StoreError):
    """Raised by ``add_request`` for a ``msg_id`` the store already holds."""

    def __init__(self, msg_id: str) -> None:
        super().__init__(f"request {msg_id!r} is already stored; a msg_id is used once")
        self.msg_id = msg_id


class UnknownRequest(StoreError, KeyError):
    """Raised by ``update_request`` for a ``msg_id`` the store does not hold (a ``KeyError``)."""

    def __init__(self, msg_id: str) -> None:
        super().__init__(f"no request with msg_id {msg_id!r}")
        self.msg_id = msg_id

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidTransition(StoreError):
    """Raised when a request's status change is not one of the allowed transitions."""

    def __init__(self, msg_id: str, old: str, new: str, allowed: frozenset[str]) -> None:
        if allowed:
            why = f"from {old} it can only go to {', '.join(sorted(allowed))}"
        else:
            why = f"{old} is final"
        super().__init__(f"request {msg_id!r} cannot go from {old} to {new}: {why}")
        self.msg_id = msg_id
        self.old = old
        self.new = new

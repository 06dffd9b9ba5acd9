"""The half of the store contract that is no bus channel: what a store keeps of its users
and for them (accounts for ``--auth token``, permalinks, page layouts). :class:`~.base.Store`
takes it in, so a backend implements one class; it lives here so that the contract's
modules stay small, each about one kind of record.
"""

from __future__ import annotations

import abc
from typing import Any

from .errors import not_implemented as _missing
from .records import PermalinkRecord, UserRecord


class UserData(abc.ABC):
    """Users, permalinks and layouts: rows that belong to a user, none to a session."""

    # -- users (gateways with --auth token) -------------------------------------------------

    @abc.abstractmethod
    async def put_user(self, rec: UserRecord) -> None:
        """Insert or replace the user ``rec.name`` (a replaced token stops working)."""
        raise _missing("put_user")

    @abc.abstractmethod
    async def get_user(self, name: str) -> UserRecord | None:
        """The user called ``name``, or None."""
        raise _missing("get_user")

    @abc.abstractmethod
    async def user_by_token(self, token_hash: str) -> UserRecord | None:
        """The user whose token has this SHA-256 (hex), or None."""
        raise _missing("user_by_token")

    @abc.abstractmethod
    async def remove_user(self, name: str) -> bool:
        """Forget a user, revoking their token; True if they were known."""
        raise _missing("remove_user")

    @abc.abstractmethod
    async def users(self) -> list[UserRecord]:
        """All users, by name."""
        raise _missing("users")

    # -- permalinks (broker/permalinks.py) ---------------------------------------------------

    @abc.abstractmethod
    async def add_permalink(self, rec: PermalinkRecord) -> bool:
        """Store ``rec`` unless a permalink with its id exists; True if it was added."""
        raise _missing("add_permalink")

    @abc.abstractmethod
    async def get_permalink(self, permalink_id: str) -> PermalinkRecord | None:
        """The permalink with this id, or None."""
        raise _missing("get_permalink")

    @abc.abstractmethod
    async def count_permalinks(self, owner: str) -> int:
        """How many permalinks ``owner`` made."""
        raise _missing("count_permalinks")

    async def delete_permalink(self, permalink_id: str, owner: str) -> bool:
        """Forget the permalink with this id if ``owner`` made it; True if it was deleted."""
        raise _missing("delete_permalink")

    # -- worksheet layouts (broker/layouts.py): notes of the page, never work -----------------

    @abc.abstractmethod
    async def put_layout(self, user: str, worksheet: str, cells: list[dict[str, Any]]) -> None:
        """Keep ``cells`` (the worksheet's cells in order) as its layout, replacing the last."""
        raise _missing("put_layout")

    @abc.abstractmethod
    async def get_layout(self, user: str, worksheet: str) -> list[dict[str, Any]] | None:
        """The worksheet's last layout, or None if its page never saved one."""
        raise _missing("get_layout")

    @abc.abstractmethod
    async def delete_layout(self, user: str, worksheet: str) -> bool:
        """Forget the worksheet's layout (its page saved no cells); True if it had one."""
        raise _missing("delete_layout")

    @abc.abstractmethod
    async def count_layouts(self, user: str) -> int:
        """How many of ``user``'s worksheets have a layout (the ``--user-layouts`` quota)."""
        raise _missing("count_layouts")

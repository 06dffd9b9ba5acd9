"""Deleting a worksheet's runs in the MongoDB store (``DELETE /home/U/W``), as a mixin of
:class:`~broker.store.mongodb.MongoStore`; :class:`~broker.store.base.Store` says what
:meth:`delete_worksheet` and :meth:`finish_deletion` promise."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from ._mongo_append import Then
from ._mongo_tx import _delete_sessions, _delete_worksheet
from .base import Message
from .records import DeletedRuns


class MongoWorksheets:
    _open_db: Callable[[], Any]
    _errors: Callable[[str], contextlib.AbstractContextManager[None]]
    _append: Callable[[Sequence[tuple[str, Message]], Then | None],
                      Awaitable[tuple[list[int], Any]]]

    async def delete_worksheet(self, user: str, worksheet: str) -> DeletedRuns | None:
        """First an append of no messages whose ``then`` deletes the requests, layout and
        deliveries: one transaction on a replica set (the appender's), the same writes one
        after another on a standalone server; then the messages, a part at a time."""
        db = self._open_db()
        with self._errors(f"delete the runs of {user}/{worksheet}"):
            first = (await self._append([], lambda session: (
                _delete_worksheet(db, user, worksheet, session))))[1]
            if first is None:
                return None
            deleted, sessions = first
            messages = await _delete_sessions(db, sessions)
        return replace(deleted, messages=messages)

    async def finish_deletion(self, session: str) -> int:
        with self._errors(f"finish the deletion of session {session!r}"):
            return await _delete_sessions(self._open_db(), [session])

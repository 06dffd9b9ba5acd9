"""The output of a cell run as it may be stored: cut at the run's and the user's limits.

Called by the broker on each batch of output before it is stored (see :mod:`broker.quotas`
for the limits and their options). Only output is cut (:data:`OUTPUT_TYPES`): replies,
status, ``execute_input``, interact and control messages are always stored, so a cell's
state and its end never depend on how much it printed (they count against the user's bytes
all the same, :mod:`broker.budget`). The message that would pass a limit is replaced by a
notice on the same run (a stream message, so the page shows it at the end of that output),
and the rest of that run's output is dropped.
"""

from __future__ import annotations

import collections
import logging
import time
import uuid
from typing import Final

from protocol import msgtypes as mt
from protocol import outputwords
from protocol.packing import packer
from protocol.wire import Message

from .store import Store, StoreError

#: Runs whose stored output is counted at once; the oldest is forgotten past this (a run
#: whose end never arrives, say).
MAX_RUNS: Final = 10_000
#: Messages that carry a run's output.
OUTPUT_TYPES: Final = frozenset({mt.STREAM, mt.DISPLAY_DATA, mt.EXECUTE_RESULT,
                                 "update_display_data"})
#: Seconds a user's stored bytes read from the store are trusted before they are read again.
RECOUNT: Final = 600.0

log = logging.getLogger("cellbus.broker")
_pack = packer(use_bin_type=True)


def message_size(msg: Message) -> int:
    """Bytes of a message's content as the store encodes it (msgpack), plus its buffers.
    Encoding runs in C; walking a big JSON display in Python instead costs many times more
    on the loop every message passes through."""
    size = sum(len(b) for b in msg.get("buffers") or ())
    try:
        return size + len(_pack(msg.get("content")))
    except (TypeError, ValueError, OverflowError):  # the store refuses it, and says so
        return size


def _user_of(msg: Message) -> str:
    """The user a stored message counts for ("" if it names none)."""
    facts = msg["metadata"].get("cellbus")
    user = facts.get("user") if isinstance(facts, dict) else None
    return user if isinstance(user, str) else ""


class UserBytes:
    """Bytes each user keeps in the store (output, requests, layouts...: see
    :mod:`broker.budget`), about: what the store said when last asked (:meth:`refresh`),
    plus what this broker stored for them since."""

    def __init__(self, store: Store) -> None:
        self.store = store
        #: Bytes this broker stored for each user, in all.
        self._counted: dict[str, int] = {}
        #: user -> (the store's bytes, ``_counted`` then, when: monotonic).
        self._read: dict[str, tuple[int, int, float]] = {}

    async def refresh(self, user: str, *, now: bool = False) -> None:
        """Ask the store, unless it was asked in the last :data:`RECOUNT` seconds (``now``:
        whenever asked; after a deletion, so that the freed bytes count at once)."""
        read = self._read.get(user)
        if read is not None and not now and time.monotonic() - read[2] < RECOUNT:
            return
        counted = self._counted.get(user, 0)
        try:
            stored = await self.store.user_bytes(user)
        except StoreError as e:
            log.warning("broker could not count the output %s keeps: %s", user, e)
            return
        self._read[user] = (counted if stored is None else stored, counted, time.monotonic())

    def used(self, user: str) -> int:
        counted = self._counted.get(user, 0)
        stored, then, _ = self._read.get(user, (0, 0, 0.0))
        return stored + counted - then

    def add(self, user: str, size: int) -> None:
        self._counted[user] = self._counted.get(user, 0) + size


class OutputCap:
    """The limits on stored output: ``cell_output`` bytes per run, ``user_output`` per user
    (0: none)."""

    def __init__(self, cell_output: int, user_output: int, users: UserBytes) -> None:
        self.cell_output = cell_output
        self.user_output = user_output
        self.users = users
        #: Output bytes stored by each run being counted (parent msg_id -> bytes); a run
        #: that was cut maps to -1.
        self._runs: collections.OrderedDict[str, int] = collections.OrderedDict()
        #: How to undo the last :meth:`screen`: each run's count before it (None: not
        #: counted), and the bytes it added to each user.
        self._undo: list[tuple[str, int | None]] = []
        self._added: list[tuple[str, int]] = []
        #: Bytes of the output the last :meth:`screen` kept (None: no limit, not measured),
        #: for the metrics, which would otherwise encode every message once more.
        self.kept_bytes: int | None = None

    def forget_screened(self) -> None:
        """The batch last screened was not stored (the store failed; its devices send it
        again): count none of it."""
        for parent, before in reversed(self._undo):
            if before is None:
                self._runs.pop(parent, None)
            else:
                self._runs[parent] = before
        for user, size in self._added:
            self.users.add(user, -size)
        self._undo.clear()
        self._added.clear()

    def screen(self, outputs: list[tuple[str, Message]]) -> list[tuple[str, Message]]:
        """``outputs`` as they may be stored: output past a run's or a user's limit is
        dropped, the first message dropped of each run becomes a notice that says so."""
        self._undo.clear()
        self._added.clear()
        self.kept_bytes = None
        if not (self.cell_output or self.user_output):
            return outputs
        self.kept_bytes = 0
        kept: list[tuple[str, Message]] = []
        for session_id, msg in outputs:
            parent = msg["parent_header"].get("msg_id")
            if not isinstance(parent, str) or msg["msg_type"] not in OUTPUT_TYPES:
                if msg["msg_type"] == mt.STATUS and isinstance(parent, str) and \
                        msg["content"].get("execution_state") == "idle":
                    self._undo.append((parent, self._runs.pop(parent, None)))  # it ended
                self._always(msg)
                kept.append((session_id, msg))
                continue
            notice = self._count(parent, msg)
            if notice is None:
                kept.append((session_id, msg))
            elif notice:
                kept.append((session_id, self._notice(msg, notice)))
        return kept

    def _always(self, msg: Message) -> None:
        """Count a message that is stored whatever the limits (replies, status, prompts)
        against its user's bytes; not an ``execute_input``, the echo of a request's code,
        which the broker counted when it accepted the request (:mod:`broker.budget`)."""
        if self.user_output and msg["msg_type"] != mt.EXECUTE_INPUT:
            self._add(_user_of(msg), message_size(msg))

    def _add(self, user: str, size: int) -> None:
        self.users.add(user, size)
        self._added.append((user, size))

    def _count(self, parent: str, msg: Message) -> str | None:
        """None to store ``msg``; else "" to drop it, or the notice that replaces it."""
        before = self._runs.pop(parent, None)
        self._undo.append((parent, before))
        used = before or 0
        if used < 0:
            self._runs[parent] = used
            return ""
        user = _user_of(msg)
        size = message_size(msg)
        cap, quota = self.cell_output, self.user_output
        user_used = self.users.used(user)
        if cap and used + size > cap:
            why = outputwords.kept_cut(cap)
        elif quota and user_used + size > quota:
            why = outputwords.user_cut(user, user_used, quota)
        else:
            self._runs[parent] = used + size
            while len(self._runs) > MAX_RUNS:
                self._runs.popitem(last=False)
            self._add(user, size)
            self.kept_bytes = (self.kept_bytes or 0) + size
            return None
        self._runs[parent] = -1
        return why

    @staticmethod
    def _notice(msg: Message, why: str) -> Message:
        """A stream message about the same run that says its output was cut (on the stream
        that was cut, so it ends that block; on stderr for other output)."""
        name = msg["content"].get("name") if msg["msg_type"] == mt.STREAM else None
        header = dict(msg["header"], msg_id=uuid.uuid4().hex, msg_type=mt.STREAM)
        return {"header": header, "msg_id": header["msg_id"], "msg_type": mt.STREAM,
                "parent_header": msg["parent_header"],
                "metadata": {"cellbus": dict(msg["metadata"].get("cellbus") or {})},
                "content": {"name": name if name in ("stdout", "stderr") else "stderr",
                            "text": outputwords.notice(why)}}

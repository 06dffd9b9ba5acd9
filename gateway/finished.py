"""Finished cells' ``/update`` answers, kept a little while so that a flood of the same read
costs no broker round trip (``settings["finished"]``).

A client that re-read a finished cell in a loop cost the gateway a request and the broker a
round trip each time: ten loops of ``/update`` with a small answer kept another user's
polls at 34 ms median against 4 ms idle, and ten loops re-reading a big cell, refused 429
each time past their ``--rate``, asked the broker before every refusal (about 1,400 of them
in 10 s; bench/read_hammer.py). A finished cell's document does not change until its
worksheet runs again, so the broker's answer (a small document, or the note that a big one
is withheld, with the SHA-256 of the JSON this gateway may keep: gateway/bigreads.py) is
kept here by ``(cell, since, session)`` and answered again without asking: a big one is
then counted against ``--rate`` and refused before any broker round trip.

What a worksheet does next is seen on the broker's feed (each output message of its
sessions names the worksheet) and in this gateway's own requests that change it (an
evaluate, an interrupt, a restart, a deletion): either forgets its kept answers, and an
answer asked for while one happened is not kept. A run started through another gateway is
seen only once its first message is on the feed, and the feed may drop messages under
load, so nothing is kept longer than :data:`FRESH` seconds: a client of two gateways may see
a finished document that long after its next evaluate, never longer.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Any, Final

from protocol import msgtypes as mt
from protocol.wire import Message

#: Seconds an answer is kept (the longest a run started elsewhere goes unseen here).
FRESH: Final = 2.0
#: Bytes of kept documents' JSON at most (the oldest are forgotten first): a small document
#: may be up to 256 KiB (broker/updates.py BIG).
MAX_KEPT_BYTES: Final = 16 * 2**20
#: Worksheets whose changes are remembered at most; past it all is forgotten (and nothing
#: kept before is answered again).
MAX_WORKSHEETS: Final = 100_000
#: Requests that only read a worksheet: they forget nothing.
READS: Final = frozenset({mt.CELL_UPDATE_REQUEST, mt.FILE_REQUEST, mt.SESSION_REPLAY_REQUEST,
                          mt.WORKSHEET_LAYOUT_GET_REQUEST, mt.WORKSHEET_NOTEBOOK_REQUEST,
                          mt.BROKER_STATUS_REQUEST, mt.AUTH_REQUEST})
Key = tuple[str, str, str, int, str | None]


class FinishedAnswers:
    """The kept answers, and each worksheet's count of changes seen (see the module
    docstring); a listener of the broker's feed."""

    def __init__(self, fresh: float = FRESH, max_bytes: int = MAX_KEPT_BYTES) -> None:
        self.fresh, self.max_bytes = fresh, max_bytes
        #: (user, worksheet) -> the tick of its last change: an answer asked for before it
        #: is not kept. A worksheet not in it changed last at :attr:`floor` or before.
        self.changes: dict[tuple[str, str], int] = {}
        self.tick = self.floor = 0
        self._kept: OrderedDict[Key, tuple[float, int, dict[str, Any], int]] = OrderedDict()
        self._bytes = 0
        #: Reads answered from what is kept (the metrics' ``cellbus_update_answers_kept``).
        self.answered = 0

    def __call__(self, msg: Message) -> None:
        """The feed's message: its worksheet changed."""
        facts = msg["metadata"].get("cellbus") or {}
        user, worksheet = facts.get("user"), facts.get("worksheet")
        if isinstance(user, str) and isinstance(worksheet, str):
            self.changed(user, worksheet)

    def changed(self, user: str, worksheet: str) -> None:
        """The worksheet changed (or may have): what was asked of it before is not kept."""
        self.tick += 1
        if len(self.changes) >= MAX_WORKSHEETS and (user, worksheet) not in self.changes:
            self.changes.clear()
            self._kept.clear()
            self._bytes = 0
            self.floor = self.tick
        self.changes[(user, worksheet)] = self.tick

    def asking(self, msg_type: str, address: tuple[str, str, str]) -> None:
        """This gateway asks the broker ``msg_type`` about ``address``: one that is no read
        may change the worksheet (told again when its reply comes, :meth:`changed`)."""
        if msg_type not in READS and address[0] and address[1]:
            self.changed(address[0], address[1])

    def seen(self, address: tuple[str, str, str]) -> int:
        """The worksheet's changes so far: given back to :meth:`keep` with the answer."""
        return self.changes.get((address[0], address[1]), self.floor)

    def get(self, address: tuple[str, str, str], since: int,
            session: str | None) -> dict[str, Any] | None:
        """The kept answer (a ``cell_update_reply``'s content) to this read, if still good."""
        key = (*address, since, session)
        kept = self._kept.get(key)
        if kept is None:
            return None
        at, changes, content, size = kept
        if changes != self.seen(address) or time.monotonic() - at > self.fresh:
            del self._kept[key]
            self._bytes -= size
            return None
        self.answered += 1
        return content

    def keep(self, address: tuple[str, str, str], since: int, session: str | None,
             changes: int, content: dict[str, Any]) -> None:
        """Keep the broker's answer ``content`` to this read if its cell is finished and
        its worksheet did not change since ``changes`` (:meth:`seen` before asking)."""
        doc = content.get("document")
        status = doc.get("status") if isinstance(doc, dict) else content.get("status")
        if status not in ("done", "error") or changes != self.seen(address):
            return
        if not isinstance(doc, dict) and not content.get("sha256"):
            # A big document itself is kept by its SHA-256 (gateway/bigreads.py); a note
            # that withholds one without naming it (the broker had not kept its JSON yet)
            # is not kept: each read of it would fetch the whole document again.
            return
        key = (*address, since, session)
        size = len(json.dumps(doc)) if isinstance(doc, dict) else 0
        if size > self.max_bytes:
            return
        if (old := self._kept.pop(key, None)) is not None:
            self._bytes -= old[3]
        self._kept[key] = (time.monotonic(), changes, content, size)
        self._bytes += size
        # Withheld notes weigh nothing: their count is bounded as well.
        while self._bytes > self.max_bytes or len(self._kept) > self.max_bytes // 1024:
            self._bytes -= self._kept.popitem(last=False)[1][3]

"""Each worksheet's open session, as this broker last wrote or read it.

Every execute, interact and replay request first asks which session its worksheet has; asking
the store each time put a reader-thread round trip (0.3-1 ms on a busy 2-core machine) on the
path of every request to its device. A store has one broker, the only writer of its
``sessions`` (it creates them on a worksheet's first request, moves them between devices and
closes them on a restart; two brokers on one store could each open a session for a worksheet
anyway, since the worksheet lock that prevents it is the broker's own), so what it wrote is
what the store holds: this cache is written through on each of those writes and read through
on a miss, including "no open session", which stays true until this broker opens one.

At start (:meth:`OpenSessions.load`) it reads the open sessions the store holds. While they
all fit, it knows every one, so a worksheet it has no record of has no session: a new
worksheet's first request and its page's first replay read nothing either.

Capacity: the :data:`MAX_WORKSHEETS` worksheets used most recently; once one is dropped to
make room, a worksheet not here is looked up in the store (and kept) when next used. Callers
get copies: a record changes here only once the store has it (:meth:`OpenSessions.stored`).
"""

from __future__ import annotations

from collections import OrderedDict

from .store import OPEN, SessionRecord, Store
from .store.records import copied

#: Worksheets whose open session is kept in memory.
MAX_WORKSHEETS = 20_000

Worksheet = tuple[str, str]


class OpenSessions:
    def __init__(self, store: Store, capacity: int = MAX_WORKSHEETS) -> None:
        self.store = store
        self.capacity = capacity
        self._open: OrderedDict[Worksheet, SessionRecord | None] = OrderedDict()
        #: True while every open session of the store is here (see the module docstring).
        self.complete = False

    async def load(self) -> None:
        """Keep the store's open sessions, the newest ``capacity`` of them."""
        records = await self.store.sessions(OPEN, newest=self.capacity + 1)
        for record in records[-self.capacity:]:  # oldest first: a worksheet's newest wins
            self._open[(record.user, record.worksheet)] = record
        self.complete = len(records) <= self.capacity

    async def find(self, user: str, worksheet: str) -> SessionRecord | None:
        """The worksheet's open session (a copy), if it has one."""
        key = (user, worksheet)
        if key in self._open:
            self._open.move_to_end(key)
            record = self._open[key]
        elif self.complete:
            return None
        else:
            record = await self.store.find_session(user, worksheet)
            if key not in self._open:  # no write for it while the store was asked
                self._keep(key, record)
        return None if record is None else copied(record)

    def stored(self, record: SessionRecord) -> None:
        """``record`` is now in the store as it is (open or closed)."""
        self._keep((record.user, record.worksheet),
                   copied(record) if record.state == OPEN else None)

    def _keep(self, key: Worksheet, record: SessionRecord | None) -> None:
        self._open[key] = record
        self._open.move_to_end(key)
        while len(self._open) > self.capacity:
            if self._open.popitem(last=False)[1] is not None:
                self.complete = False

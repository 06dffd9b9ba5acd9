"""The device's outbox: every record it relays upstream, kept until the broker has stored it.

This is the device half of cellbus's exactly-once delivery (the broker half is
:mod:`broker.receipts`), shaped like the ZeroMQ Guide's reliable request patterns with a
go-back-N window. Each record gets a number ``n`` (1, 2, 3, ... within this device process,
whose *epoch* is a random id made at start) in ``metadata["cellbus"]["out"] = [epoch, n]``,
is sent in order, and stays here until an ``output_ack`` from the broker says that every
record up to ``n`` is stored. The broker stores records in order, each once:

- a record it stored already is dropped, and acknowledged again;
- a record that comes after a gap (those before it were lost: the broker restarted, or it
  could not write them) is dropped, and the ack asks for everything after the last stored
  record again (``resend``);
- if no ack comes for a while (the broker is down, or its store cannot write), the outbox
  sends everything unacknowledged again, waiting longer each time (``RESEND_AFTER``, or twice
  the receipts' round trip when longer, doubling up to ``RESEND_MAX`` or that).

One task (:meth:`Outbox.run`) writes records to the socket, so a resend can never overtake
or interleave with new records. The records waiting when it writes (a worker's burst: busy,
input, stream, reply, idle) go out as one ``records`` message (:mod:`protocol.records`), so
the broker verifies, stores and acknowledges them in one pass; each keeps its number.
The outbox is bounded in bytes (``capacity``):
:meth:`Outbox.room` waits while it is full, and the device's workers wait on it before
reading their next record, so a session that prints faster than the broker stores is
slowed by its own blocked writes (backpressure) and nothing is dropped. Records the device
says itself (refusals, replies to interrupts) are small and never wait.

The outbox is one queue for every session, so what one user's sessions hold in it is what
every other user's output waits behind (once at the device, once more in the broker's store
batches): four sessions of one user printing 4 KiB lines without end kept it full, and
another user's first cell took seconds. So each user (``metadata.cellbus.user``) holds at
most ``user_capacity`` bytes (--user-outbox: 1 MiB, and at most a quarter of ``capacity``)
before that user's workers wait; a user holding less never waits for them. When the whole
outbox is full all the same (many users flooding at once), only users holding more than an
even share of it wait. A user who reaches the share is logged (at a bounded rate) and
counted (:attr:`Outbox.user_waits`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from protocol.ratelog import RateLog
from protocol.records import MAX_BYTES, MAX_RECORDS
from protocol.wire import Message

log = logging.getLogger("cellbus.device")

#: Bytes of unacknowledged records a device holds before its workers wait (--outbox-bytes).
DEFAULT_CAPACITY = 32 * 2**20
#: Bytes of those one user's sessions may hold before that user's workers wait
#: (--user-outbox), unless a quarter of the outbox's capacity is less.
DEFAULT_USER_CAPACITY = 2**20
#: Seconds without an ack, while records wait for one, before everything is sent again;
#: doubled after each such resend without progress, up to RESEND_MAX.
RESEND_AFTER = 2.0
RESEND_MAX = 8.0
#: A request to resend from the same record again within this many seconds is not obeyed:
#: one resend answers every gap the broker saw before it arrived.
RESEND_COOLDOWN = 0.5

Send = Callable[[list[bytes]], Awaitable[None]]
Serialize = Callable[[Message], list[bytes]]
Bundle = Callable[[list[list[bytes]]], list[bytes]]


def _mib(n: int) -> str:
    return f"{n / 2**20:.3g} MiB"


@dataclass(slots=True)
class _Record:
    n: int
    msg: Message
    frames: list[bytes]
    size: int
    #: The user whose session it is (``metadata.cellbus.user``), if the record names one.
    user: str | None = None
    tries: int = 1
    sent: bool = field(default=False)
    #: When it was first written (monotonic; 0 until then): its receipt times the round trip.
    sent_at: float = 0.0


class Outbox:
    """Records waiting for the broker's receipt; see the module docstring.

    :param send: writes one message's frames to the broker (awaits while it cannot).
    :param serialize: signs and packs a message (``protocol.Session.serialize``); raises
        ``ProtocolError`` for content the bus cannot carry, which :meth:`put` passes on.
    :param capacity: bytes of unacknowledged records before :meth:`room` waits.
    :param bundle: packs several records' frames into one message
        (``protocol.records.bundle``); without it each record is sent alone.
    :param user_capacity: bytes one user's records may take before :meth:`room` makes that
        user wait; None: :data:`DEFAULT_USER_CAPACITY` or a quarter of ``capacity``,
        whichever is less; 0: no share per user (every user waits only for a full outbox).
    """

    def __init__(self, send: Send, serialize: Serialize, *,
                 capacity: int = DEFAULT_CAPACITY, bundle: Bundle | None = None,
                 user_capacity: int | None = None) -> None:
        self.epoch = uuid.uuid4().hex[:12]
        self.capacity = capacity
        self.user_capacity = (min(DEFAULT_USER_CAPACITY, capacity // 4)
                              if user_capacity is None else min(user_capacity, capacity))
        #: Bytes of unacknowledged records per user (only users holding some).
        self.held: dict[str, int] = {}
        #: Times a user's worker had to wait because that user held its share.
        self.user_waits = 0
        self._notices = RateLog(log, interval=60.0)
        self._send = send
        self._serialize = serialize
        self._bundle = bundle
        self._records: collections.deque[_Record] = collections.deque()
        self._last = 0  # n of the newest record
        self._acked = 0  # n of the newest record the broker confirmed it stored
        #: When (monotonic) a broker's store was last found to lack records a broker had
        #: confirmed (:meth:`_renumber`); 0.0: never.
        self.lost_at = 0.0
        self._next = 1  # n of the next record to write to the socket
        self.bytes = 0
        self._wake = asyncio.Event()  # a record to write, or a resend
        self._freed = asyncio.Event()  # an ack made room
        self._empty = asyncio.Event()
        self._empty.set()
        self._acked_at = time.monotonic()
        self._wait = RESEND_AFTER
        self._rtt: float | None = None  # the receipts' smoothed round trip (s), once known
        self._resent: tuple[int, float] = (0, 0.0)  # (from n, when) of the last resend
        self.resends = 0

    # -- the device's side ------------------------------------------------------------------

    def put(self, msg: Message) -> None:
        """Number ``msg``, keep it until acknowledged, and queue it to be sent."""
        n = self._last + 1
        facts = msg["metadata"].setdefault("cellbus", {})
        facts["out"] = [self.epoch, n]
        frames = self._serialize(msg)  # ProtocolError: nothing was kept
        self._last = n
        size = sum(map(len, frames))
        if not self._records:
            self._acked_at = time.monotonic()  # the wait for an ack starts now
        user = facts.get("user")
        user = user if isinstance(user, str) else None
        self._records.append(_Record(n, msg, frames, size, user))
        self.bytes += size
        if user is not None:
            self.held[user] = self.held.get(user, 0) + size
        self._empty.clear()
        self._wake.set()

    async def room(self, user: str | None = None) -> None:
        """Wait while ``user`` holds its share of the outbox (see the module docstring), or,
        for no user, while the outbox holds ``capacity`` bytes or more."""
        counted = False
        while self._full_for(user):
            if not counted:
                counted = True
                self.user_waits += user is not None
            self._freed.clear()
            await self._freed.wait()

    def _full_for(self, user: str | None) -> bool:
        if user is None or not self.user_capacity:
            return self.bytes >= self.capacity
        held = self.held.get(user, 0)
        if held >= self.user_capacity:
            self._notices.info(user, "device: %s's sessions hold %s of output the broker has "
                               "not stored yet, the most one user may hold (--user-outbox %s); "
                               "their writes wait while other users' output goes on",
                               user, _mib(held), _mib(self.user_capacity))
            return True
        return self.bytes >= self.capacity and held >= self.capacity / max(1, len(self.held))

    def parents(self) -> set[str]:
        """msg_ids of the requests with records not yet stored (a device reports them as
        held, so a restarted broker does not take them for lost)."""
        out = set()
        for record in self._records:
            parent = record.msg["parent_header"].get("msg_id")
            if isinstance(parent, str):
                out.add(parent)
        return out

    def __len__(self) -> int:
        return len(self._records)

    def confirmed(self) -> list[Any]:
        """``[epoch, n]``: the newest record the broker confirmed (a device reports it, so
        that a broker whose store lacks it says so before any record is sent)."""
        return [self.epoch, self._acked]

    async def flushed(self, timeout: float) -> bool:
        """Wait until every record is acknowledged, at most ``timeout`` s; True if so."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- the broker's answers ---------------------------------------------------------------

    def ack(self, epoch: Any, stored: Any, *, resend: bool = False) -> None:
        """The broker has stored every record up to ``stored``; with ``resend``, it wants
        everything after it again."""
        if epoch != self.epoch or not isinstance(stored, int) or isinstance(stored, bool):
            return  # for an earlier process of this device, or garbage
        if resend and stored < self._acked:
            self._renumber(stored)
            return
        progressed = timed = False
        now = time.monotonic()
        self._acked = max(self._acked, min(stored, self._last))
        while self._records and self._records[0].n <= stored:
            record = self._records.popleft()
            self.bytes -= record.size
            if record.user is not None:
                left = self.held[record.user] - record.size
                if left > 0:
                    self.held[record.user] = left
                else:
                    del self.held[record.user]
            progressed = True
            if record.tries == 1 and record.sent_at:  # sent once: its receipt is its own
                timed = True
                self._rtt = now - record.sent_at if self._rtt is None else (
                    0.875 * self._rtt + 0.125 * (now - record.sent_at))
        if progressed:
            self._acked_at = now
            # Only a receipt of a record sent once times the trip; one of resent records may
            # answer either copy, so the longer wait stays until one is timed (Karn): else
            # a trip past RESEND_AFTER had every record resent and none ever timed.
            if timed or self._rtt is not None:
                self._wait = self._base()
            self._freed.set()
        if not self._records:
            self._empty.set()
        self._next = max(self._next, min(stored, self._last) + 1)
        if resend:
            now = time.monotonic()
            start, when = self._resent
            if start != stored + 1 or now - when > RESEND_COOLDOWN:
                self._go_back(now, "the broker missed records")

    def _renumber(self, stored: int) -> None:
        """The broker asks again for records it confirmed before (up to ``self._acked``), which
        this outbox no longer holds: its store lost them (restored from an older copy, or its
        last commits lost with the machine). Asking again cannot fill that gap, and every
        later record would be refused after it, so the records held are numbered afresh under
        a new epoch, which the broker takes from 1 as a restarted device's."""
        log.warning("device: the broker's store lacks %d output records it had confirmed "
                    "(#%d to #%d; its store was restored from an older copy or lost its latest "
                    "commits): what they held is not in the store; sending the %d records "
                    "held here under a new numbering", self._acked - stored, stored + 1,
                    self._acked, len(self._records))
        self.lost_at = time.monotonic()
        self.epoch = uuid.uuid4().hex[:12]
        for n, record in enumerate(self._records, 1):
            record.n = n
            record.msg["metadata"]["cellbus"]["out"] = [self.epoch, n]
            record.frames = self._serialize(record.msg)
        self._last = len(self._records)
        self._acked = 0
        self._next = 1
        self._resent = (0, 0.0)
        self._acked_at = time.monotonic()
        self._wake.set()

    def check(self) -> None:
        """Called now and then (each heartbeat): send everything again if no ack came for
        too long while records wait for one."""
        now = time.monotonic()
        if self._records and self._records[0].sent and now - self._acked_at >= self._wait:
            self._go_back(now, f"no receipt from the broker for {now - self._acked_at:.0f} s")
            self._acked_at = now
            self._wait = min(self._wait * 2, max(RESEND_MAX, self._base()))

    def _base(self) -> float:
        """Seconds to wait for a receipt before sending again: RESEND_AFTER, or twice the
        round trip its receipts took when that is longer (a broker 3 s of round trip away
        had every record sent twice, each receipt coming after its resend)."""
        return RESEND_AFTER if self._rtt is None else max(RESEND_AFTER, 2 * self._rtt)

    def again(self, why: str) -> None:
        """Send every record not stored yet again, from the first (a new link)."""
        self._go_back(time.monotonic(), why)

    def _go_back(self, now: float, why: str) -> None:
        if not self._records:
            return
        first = self._records[0].n
        self._resent = (first, now)
        if self._next > first:
            self.resends += 1
            log.info("device: sending %d unacknowledged records again from #%d (%s)",
                     len(self._records), first, why)
        self._next = first
        self._wake.set()

    # -- the writer -------------------------------------------------------------------------

    async def run(self) -> None:
        """Write records to the socket in order, from ``_next``; forever. Records that are
        ready together go out as one bus message when a ``bundle`` was given."""
        while True:
            if self._next > self._last:
                self._wake.clear()
                await self._wake.wait()
                continue
            start = self._next
            burst = self._burst(start, MAX_RECORDS if self._bundle else 1)
            if len(burst) == 1 or self._bundle is None:
                frames = burst[0].frames
            else:
                frames = self._bundle([record.frames for record in burst])
            await self._send(frames)
            sent_at = time.monotonic()
            for record in burst:
                record.sent = True
                record.sent_at = record.sent_at or sent_at
            if self._next == start:  # not sent back meanwhile
                self._next = start + len(burst)

    def _burst(self, start: int, most: int) -> list[_Record]:
        """The records from ``start`` on that are waiting (at most ``most``, and one
        bundle's bytes),
        signed afresh where they are a resend (or the broker takes them for a replay)."""
        first = self._records[0].n
        burst: list[_Record] = []
        size = 0
        for n in range(start, min(self._last, start + most - 1) + 1):
            record = self._records[n - first]
            if burst and size + record.size > MAX_BYTES:
                break
            if record.sent:
                record.tries += 1
                record.msg["metadata"]["cellbus"]["try"] = record.tries
                record.frames = self._serialize(record.msg)
            burst.append(record)
            size += record.size
        return burst

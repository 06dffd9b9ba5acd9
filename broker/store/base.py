"""The contract every store backend implements: the broker's durable buffer for the bus.

Modelled on django/channels' ``BaseChannelLayer``: one base class, backends chosen by URL
(:func:`broker.store.open_store`), named errors (:mod:`broker.store.errors`). Every write has
been made durable when its coroutine returns: the broker acknowledges a request, or publishes
an output message, only after that. One contract suite (``tests/test_store_contract.py``)
runs against every backend.

Retention is part of the contract: :meth:`Store.compact` (decided in :mod:`.compaction`, the
same for every backend) rewrites finished sessions' message logs through three backend
primitives, :meth:`Store.finished_sessions`, :meth:`Store.session_requests` and
:meth:`Store.apply_compaction`; :meth:`Store.reclaim_space` gives the space back.

What a store keeps of users and for them, beside the bus's channels (accounts, permalinks,
page layouts), is the contract's other half, :class:`.userdata.UserData`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

from . import compaction
from .compaction import CompactionStats, SessionPlan
from .errors import InvalidTransition, UnknownRequest
from .errors import not_implemented as _missing
from .records import (ANY, FINAL, INTERACT_REQUEST, DeletedRuns, DeviceFilter, DeviceRecord,
                      Progress, Request, SessionRecord)
from .userdata import UserData

Message = dict[str, Any]
#: Seconds between the renewals of a broker's claim on its store (:meth:`Store.keep_claim`).
CLAIM_RENEWAL = 1.0
#: A request status change to make with output: ``(msg_id, status, error or None)``.
StatusUpdate = tuple[str, str, str | None]
#: Each device's receipt (:mod:`broker.receipts`): device -> (its outbox's epoch, the last
#: record of it stored).
Receipts = Mapping[str, tuple[str, int]]
#: What :meth:`Store.add_session_request` stores as a new request's message, given the
#: session's newest unfinished request of its kind (its msg_id, or None).
Stamp = Callable[[str | None], Message]


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for log lines and error messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return "<unparseable store URL>"


class Store(UserData, abc.ABC):
    """An async store of requests, messages, sessions and devices.

    Use ``async with open_store(url) as store:`` or ``await store.open()`` ... ``await
    store.close()``. Every call on a store that is not open raises :class:`StoreClosed`.
    """

    def __init__(self, url: str) -> None:
        self.url = url

    def describe(self) -> str:
        """What this store is, for the broker's start-up log line (no secrets)."""
        return redact_url(self.url)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # -- lifecycle ------------------------------------------------------------------------

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create the schema if needed; raises :class:`StoreError` naming why."""
        raise _missing("open")

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish every queued write, then release the connections; closing twice is a no-op."""
        raise _missing("close")

    # -- the one broker of a store ----------------------------------------------------------

    async def claim(self, holder: dict[str, Any]) -> None:
        """Make the broker ``holder`` names ({owner: a unique id, host, pid, since}) the
        store's one broker, or raise :class:`StoreClaimed` naming the live broker that is.
        Only a broker claims its store (``cellbus user`` reads and writes beside it). By
        default nothing: a SQLite file is held by a lock beside it (broker/store_owner.py)."""

    async def keep_claim(self, owner: str) -> bool:
        """Renew ``owner``'s claim (every :data:`CLAIM_RENEWAL` seconds); False once another
        broker holds the store."""
        return True

    async def release_claim(self, owner: str) -> None:
        """Give the claim up (a broker that stops cleanly, before :meth:`close`)."""

    # -- requests (the shell channel) -----------------------------------------------------

    @abc.abstractmethod
    async def add_request(self, req: Request) -> Request:
        """Persist a new request and return it as stored (``created`` set if it was 0).

        Raises :class:`DuplicateRequest` if its ``msg_id`` is already stored.
        """
        raise _missing("add_request")

    @abc.abstractmethod
    async def update_request(self, msg_id: str, status: str, *, device: str | None = None,
                             error: str | None = None) -> Request:
        """Move a request to ``status`` and return it updated.

        Sets ``started`` on ``-> working`` and ``finished`` on a final status. ``device`` (if
        given) and ``error`` (if given) are recorded. A hand-back ``working -> needs_work``
        clears ``started`` and unplaces the request unless ``device`` names its new device.
        Raises :class:`UnknownRequest` or :class:`InvalidTransition`.
        """
        raise _missing("update_request")

    @abc.abstractmethod
    async def assign_request(self, msg_id: str, device: str) -> Request:
        """Place a ``needs_work`` request on ``device`` (its status stays ``needs_work``).

        Raises :class:`UnknownRequest`, or :class:`InvalidTransition` if it already started.
        """
        raise _missing("assign_request")

    @abc.abstractmethod
    async def get_request(self, msg_id: str) -> Request | None:
        """The request with this ``msg_id``, or None."""
        raise _missing("get_request")

    @abc.abstractmethod
    async def cell_request(self, user: str, worksheet: str, cell_id: str) -> Request | None:
        """The cell's latest ``execute_request`` in creation order, or None."""
        raise _missing("cell_request")

    @abc.abstractmethod
    async def worksheet_cells(self, user: str, worksheet: str) -> set[str]:
        """The ids of the worksheet's cells that have an ``execute_request``, in any of its
        sessions (for a worksheet with no layout: broker/notebook.py)."""
        raise _missing("worksheet_cells")

    @abc.abstractmethod
    async def requests(self, status: str, *, device: DeviceFilter = ANY,
                       limit: int | None = None) -> list[Request]:
        """Requests with ``status``, oldest first (creation order).

        ``device=ANY`` (the default) matches every request, ``device=None`` only unplaced
        ones, and a string only those placed on that device.
        """
        raise _missing("requests")

    async def unfinished_requests(self, session: str) -> list[Request]:
        """The requests of ``session`` still ``needs_work`` or ``working``, oldest first.
        Asked on every Jupyter kernel listing and channels connect, so a store answers it
        from an index, however many requests the session ran (this default reads them all)."""
        return [r for r in await self.session_requests(session) if r.status not in FINAL]

    async def interact_runs(self, session: str, interact_id: str, *, after: str,
                            before: str | None = None, limit: int = 32) -> list[Request]:
        """The interact requests of ``interact_id`` in ``session`` stored after the
        request ``after`` (and before the request ``before``, if given), newest first, at most
        ``limit``. A cell's view folded from the store reads its interacts' latest runs with
        this (broker/interactruns.py), so a store answers it from an index, however long the
        session ran (this default reads all its requests)."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        requests = await self.session_requests(session)
        order = [r.msg_id for r in requests]
        if after not in order or (before is not None and before not in order):
            return []
        start, end = order.index(after) + 1, order.index(before) if before else len(order)
        runs = [r for r in requests[start:end]
                if r.msg_type == INTERACT_REQUEST and r.interact_id == interact_id]
        return runs[::-1][:limit]

    @abc.abstractmethod
    async def supersede_pending(self, session: str, interact_id: str, state: int) -> list[str]:
        """Mark ``needs_work`` interact_requests of ``(session, interact_id)`` with a lower
        ``state`` as superseded; return their msg_ids, oldest first."""
        raise _missing("supersede_pending")

    # -- messages (the iopub channel) -----------------------------------------------------

    @abc.abstractmethod
    async def append_messages(self, items: Sequence[tuple[str, Message]]) -> list[int]:
        """Persist ``(session, message)`` items atomically; return their seqs in order.

        Each message gets its session's next ``seq``: 1, 2, 3, ... per session, strictly
        increasing and gap-free, whatever the number of concurrent callers (or processes).
        """
        raise _missing("append_messages")

    async def append_and_update(self, items: Sequence[tuple[str, Message]],
                                updates: Sequence[StatusUpdate], receipts: Receipts | None = None,
                                ) -> tuple[list[int], list[Progress | None]]:
        """:meth:`append_messages`, then :meth:`update_request` for each ``(msg_id, status,
        error)`` in order, then :meth:`put_receipts`: the output, the progress it shows and
        the receipts of the devices that sent it, durable together when this returns. Gives
        the seqs and each update's :class:`Progress`; an update not allowed, or of an unknown
        request, gives None instead of raising.
        Backends that can (SQLite) do it all in one write, one transaction: a crash stores
        all or nothing, so a record is never stored twice. This default writes the receipts
        last: a crash between the writes may store a record again when its device resends it."""
        seqs = await self.append_messages(items) if items else []
        updated: list[Progress | None] = []
        for msg_id, status, error in updates:
            try:
                updated.append(Progress.of(await self.update_request(msg_id, status,
                                                                     error=error)))
            except (InvalidTransition, UnknownRequest):
                updated.append(None)
        if receipts:
            await self.put_receipts(receipts)
        return seqs, updated

    @abc.abstractmethod
    async def messages(self, session: str, *, since: int = 0, parent: str | None = None,
                       limit: int | None = None) -> list[tuple[int, Message]]:
        """``(seq, message)`` with seq > ``since`` in seq order, optionally only the
        messages whose parent msg_id is ``parent``, at most ``limit`` of them."""
        raise _missing("messages")

    @abc.abstractmethod
    async def last_seq(self, session: str) -> int:
        """The highest seq given out for ``session``; 0 if none."""
        raise _missing("last_seq")

    async def seq_floor(self) -> int:
        """The seq past which this store, a restored copy, numbers new output (0: not one):
        a client position at or below it that the store does not hold is one it lost."""
        return 0

    async def user_bytes(self, user: str) -> int | None:
        """Bytes ``user`` keeps in the store, as stored: the messages of their sessions, their
        requests, layouts, permalinks and delivery positions (:mod:`._user_bytes`; for the
        broker's ``--user-output``), or None where the backend cannot tell cheaply: the
        default, and the broker then counts from its start."""
        return None

    # -- sessions ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def put_session(self, rec: SessionRecord) -> None:
        """Insert or replace the session record ``rec.session``."""
        raise _missing("put_session")

    async def add_session_request(self, rec: SessionRecord, req: Request,
                                  stamp: Stamp | None = None) -> Request:
        """:meth:`put_session` then :meth:`add_request` (whose errors it raises): a new
        request and its session's activity, durable together when this returns. Backends
        that can (SQLite) do both in one write, so a refused request changes no session.

        With ``stamp``, the message stored (and returned) is ``stamp(latest)``: ``latest`` is
        the msg_id of the session's newest unfinished request of ``req.msg_type`` before this
        one, or None. SQLite reads it in the same write, so no request of the session ends or
        arrives between the read and the insert; this default reads it just before."""
        if stamp is not None:
            latest = [r.msg_id for r in await self.unfinished_requests(req.session)
                      if r.msg_type == req.msg_type]
            req = replace(req, message=stamp(latest[-1] if latest else None))
        await self.put_session(rec)
        return await self.add_request(req)

    @abc.abstractmethod
    async def get_session(self, session: str) -> SessionRecord | None:
        """The session record, or None."""
        raise _missing("get_session")

    @abc.abstractmethod
    async def find_session(self, user: str, worksheet: str) -> SessionRecord | None:
        """The open session of this worksheet (the newest if several), or None."""
        raise _missing("find_session")

    @abc.abstractmethod
    async def sessions(self, state: str | None = None, *,
                       newest: int | None = None) -> list[SessionRecord]:
        """All session records, or those in ``state``, oldest first; with ``newest``, only
        that many of them, the last created."""
        raise _missing("sessions")

    # -- devices ----------------------------------------------------------------------------

    @abc.abstractmethod
    async def put_device(self, rec: DeviceRecord) -> None:
        """Insert or replace the device record ``rec.device``."""
        raise _missing("put_device")

    @abc.abstractmethod
    async def devices(self) -> list[DeviceRecord]:
        """All device records, by name."""
        raise _missing("devices")

    @abc.abstractmethod
    async def remove_device(self, device: str) -> bool:
        """Forget a device; True if it was known."""
        raise _missing("remove_device")

    # -- receipts (broker/receipts.py) ------------------------------------------------------

    @abc.abstractmethod
    async def put_receipts(self, receipts: Receipts) -> None:
        """Insert or replace each device's receipt ``(epoch, stored)``."""
        raise _missing("put_receipts")

    @abc.abstractmethod
    async def receipts(self) -> dict[str, tuple[str, int]]:
        """Every device's receipt: device -> (epoch, last record stored)."""
        raise _missing("receipts")

    # -- deliveries (broker/kernels.py) -----------------------------------------------------

    async def put_delivery(self, user: str, worksheet: str, client: str, session: str,
                           seq: int) -> None:
        """Insert or replace what a Jupyter channels client of the worksheet was delivered
        last: ``seq`` of ``session``."""
        raise _missing("put_delivery")

    async def delivery(self, user: str, worksheet: str, client: str) -> tuple[str, int] | None:
        """``(session, seq)`` stored by :meth:`put_delivery` for the client, or None."""
        raise _missing("delivery")

    # -- retention (broker/store/compaction.py) ---------------------------------------------

    async def compact(self, older_than: float) -> CompactionStats:
        """Compact the message log of every session that finished before ``older_than`` (a
        ``time.time()``), keeping each cell's final output; see :mod:`.compaction`.

        Afterwards ``messages(session, parent=...)`` of each cell's latest request folds to
        the same output as before; seqs are never reused (new messages go on from the
        session's last seq); compacting again changes nothing until the session has new
        messages. Call :meth:`reclaim_space` after it to give the space back to the disk.
        """
        return await compaction.compact(self, older_than)

    @abc.abstractmethod
    async def finished_sessions(self, before: float, *, limit: int) -> list[tuple[str, int]]:
        """``(session, last seq)`` of at most ``limit`` sessions to compact, least recently
        active first: no ``needs_work`` or ``working`` request, ``last_activity`` and the
        last message both older than ``before``, and messages since the last compaction."""
        raise _missing("finished_sessions")

    @abc.abstractmethod
    async def session_requests(self, session: str) -> list[Request]:
        """Every request of ``session``, in creation order."""
        raise _missing("session_requests")

    @abc.abstractmethod
    async def apply_compaction(self, plan: SessionPlan) -> CompactionStats:
        """Apply ``plan``: delete its ``drop_requests`` (only those in a final status), then
        every message at or below ``plan.through`` whose parent is no stored request of the
        session, delete and rewrite the messages it names (a seq that is gone is skipped),
        and note the session compacted through ``plan.through``. Every step is safe to
        repeat; messages above ``plan.through`` are never touched."""
        raise _missing("apply_compaction")

    async def reclaim_space(self) -> str | None:
        """Give space freed by :meth:`compact` back to the operating system where the
        backend does not reuse it by itself; a line for the log saying what was done, or
        None. The default does nothing (MongoDB's storage engine reuses freed space)."""
        return None

    async def disk_usage(self) -> int | None:
        """Bytes the store takes on this machine's disk, or None if it is not local."""
        return None

    # -- deleting a worksheet's runs (broker/deletion.py) ------------------------------------

    async def delete_worksheet(self, user: str, worksheet: str) -> DeletedRuns | None:
        """Delete the worksheet's requests, layout and delivery positions and mark its
        sessions ``deleting`` (in one transaction where the backend has them), then the
        messages of each session a part at a time, then mark it closed
        (:mod:`._worksheet_rows`); its session records stay (with their seq counters, so no
        seq is ever given out twice). None, deleting nothing, if a request of it is
        ``needs_work`` or ``working``."""
        raise _missing("delete_worksheet")

    async def finish_deletion(self, session: str) -> int:
        """End the deletion of a session left ``deleting`` (a broker stopped in the middle
        of :meth:`delete_worksheet`): its messages, a part at a time, then it is closed; how
        many messages."""
        raise _missing("finish_deletion")

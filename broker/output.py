"""Output at the broker: give each message its session's next seq, store it, then publish it.

Only the broker assigns ``seq`` (the ZeroMQ Guide's Clone pattern), and nothing is published
that is not stored: any subscriber catches up from the store. Storing a batch also moves the
requests it answers along (working, then done or error once the reply *and* the idle status
after it are in, so "done" means the cell's output is complete) in the same commit, and a
request that ends is let go of: it is no longer handed out, and the next run of its interact
may go (:meth:`Outputs.ended`).

A request has one reply. One the broker ended itself (``DeviceLost`` when its device went
silent) may still be answered by its device, which was only frozen or cut off and goes on:
its late output is stored after the error as any output, but its reply is not
(:meth:`Outputs.late_reply`); a Jupyter client got two ``execute_reply`` for one request,
the error and then ``ok``.

Every second the last seq of each recently active session is published as a beacon
(:meth:`Outputs.beacons`), so a subscriber whose feed dropped the tail of a burst sees it is
behind and catches up from the store. A beacon goes out every second even with no session
in it: its sender (``header["session"]``, one per broker process) tells subscribers that a
new broker runs, and a broker that died between a commit and its publish left stored output
that no one published and no device sends again (gateway/ws.py catches up then).
"""

from __future__ import annotations

import asyncio
import logging
import time

from protocol import msgtypes as mt
from protocol.requests import Endings
from protocol.sockets import BusSocket
from protocol.wire import Message, Session

from . import crashpoint
from .cells import Cells
from .handed import Handed
from .interacts import Interacts
from .metrics import BrokerMetrics
from .prompts import Prompts
from .store import (DONE, ERROR, FINAL, NEEDS_WORK, WORKING, InvalidTransition, Request,
                    Store, UnknownRequest)
from .store.base import StatusUpdate

#: Seconds between seq beacons, and how long after its last output a session is included.
BEACON_INTERVAL = 1.0
BEACON_WINDOW = 5.0


class Outputs:
    """Persists and publishes output, and ends the requests it finishes."""

    def __init__(self, *, wire: Session, store: Store, pub: BusSocket, cells: Cells,
                 interacts: Interacts, prompts: Prompts, handed: Handed,
                 metrics: BrokerMetrics, log: logging.Logger) -> None:
        self.wire, self.store, self.pub, self.cells = wire, store, pub, cells
        self.prompts = prompts
        self.interacts, self.handed, self.metrics, self.log = interacts, handed, metrics, log
        self.replied = Endings()  # requests whose reply is in, the idle after it not yet
        self.recent_seqs: dict[str, tuple[int, float]] = {}  # session -> (last seq, when)

    async def persist_and_publish(self, outputs: list[tuple[str, Message]],
                                  receipts: dict[str, tuple[str, int]] | None = None, *,
                                  size: int | None = None) -> None:
        """Give each message its session's next seq and persist all, together with the
        status changes of the requests they answer and the ``receipts`` of the devices that
        sent them (one write, one commit), then publish: nothing is published that is not
        stored."""
        known: dict[str, tuple[Request, str] | None] = {}
        updates: list[StatusUpdate] = []
        ended: list[Request] = []
        outputs = [out for out in outputs if not await self.late_reply(out[1], known)]
        for _, msg in outputs:
            parent = msg["parent_header"].get("msg_id")
            if isinstance(parent, str):
                await self._advance(parent, msg, known, updates, ended)
        started = time.monotonic()
        seqs, updated = await self.store.append_and_update(outputs, updates, receipts)
        self.metrics.stored(outputs, time.monotonic() - started, size)
        crashpoint.after_store(outputs)
        for progress in updated:
            if progress is not None:
                self.cells.refresh(progress)
        for (_session_id, msg), seq in zip(outputs, seqs):
            msg["metadata"]["cellbus"]["seq"] = seq
            parent = msg["parent_header"].get("msg_id")
            if isinstance(parent, str) and not self.interacts.apply(parent, seq, msg):
                self.cells.apply(parent, seq, msg)
            self.prompts.stored(_session_id, msg, seq)
        for request in ended:
            await self.ended(request)  # its slot frees, whatever the store said
        now = time.monotonic()
        for session_id, msg in outputs:
            await self.wire.send(self.pub, msg, [session_id.encode()])
            self.recent_seqs[session_id] = (msg["metadata"]["cellbus"]["seq"], now)

    async def ended(self, request: Request) -> None:
        """``request`` ended (done or error): it is no longer with a device, and the next
        run of its interact, if any, may go."""
        self.handed.discard(request.msg_id)
        await self.interacts.finished(request)
        self.prompts.ended(request)

    async def set_status(self, request: Request, status: str,
                         error: str | None = None) -> Request | None:
        """Move ``request`` to ``status`` in the store and its cell's view; None if the store
        says it cannot (it moved on meanwhile, or is unknown)."""
        try:
            updated = await self.store.update_request(request.msg_id, status, error=error)
        except (InvalidTransition, UnknownRequest) as e:
            self.log.debug("broker: %s", e)
            return None
        self.cells.refresh(updated)
        return updated

    async def beacons(self) -> None:
        """Clone pattern: publish each recently active session's last seq every second (for
        BEACON_WINDOW seconds after its last output), so a subscriber whose feed dropped the
        tail of a burst sees that it is behind and catches up from the store; with no
        session too, so a subscriber learns that this broker process is a new one."""
        while True:
            await asyncio.sleep(BEACON_INTERVAL)
            cutoff = time.monotonic() - BEACON_WINDOW
            self.recent_seqs = {s: v for s, v in self.recent_seqs.items() if v[1] >= cutoff}
            beacon = self.wire.msg(mt.SEQ_BEACON, {"sessions": {
                s: seq for s, (seq, _) in self.recent_seqs.items()}})
            await self.wire.send(self.pub, beacon, [b""])

    async def late_reply(self, msg: Message,
                         known: dict[str, tuple[Request, str] | None]) -> bool:
        """Whether ``msg`` is a reply to a request that ended before it came (see the module
        docstring): it is not stored, the request keeps the reply it ended with."""
        parent = msg["parent_header"].get("msg_id")
        if msg["msg_type"] not in (mt.EXECUTE_REPLY, mt.INTERACT_REPLY) or \
                not isinstance(parent, str):
            return False
        entry = await self._request(parent, known)
        if entry is None or entry[1] not in FINAL:
            return False
        self.log.info("broker: a late %s to request %s, which ended %s already, is not stored",
                      msg["msg_type"], parent, entry[1])
        return True

    async def _request(self, parent: str, known: dict[str, tuple[Request, str] | None]
                       ) -> tuple[Request, str] | None:
        """The request ``parent`` and its status, from ``known`` (filled on first use)."""
        if parent not in known:
            view = self.cells.cached(parent)
            request = view.request if view else await self.store.get_request(parent)
            known[parent] = None if request is None else (request, request.status)
        return known[parent]

    async def _advance(self, parent: str, msg: Message,
                       known: dict[str, tuple[Request, str] | None],
                       updates: list[StatusUpdate], ended: list[Request]) -> None:
        """Plan how ``msg`` moves the request ``parent`` along: working when it starts; done or
        error once its reply and the idle status after it are in, so "done" means its output
        is complete. Adds the status changes to ``updates`` and the request to ``ended`` when
        it ends; ``known`` holds each request and its status as the messages before this one
        left it."""
        kind, content = msg["msg_type"], msg["content"]
        if (end := self.replied.see(parent, kind, content)) is not None:
            new, error = DONE if end.ok else ERROR, end.error
        elif kind == mt.EXECUTE_INPUT or (kind == mt.STATUS and
                                          content.get("execution_state") == "busy"):
            new, error = WORKING, None
        else:
            return
        entry = await self._request(parent, known)
        if entry is None or entry[1] == new:
            return
        current, status = entry
        if new == DONE and status == NEEDS_WORK:
            updates.append((parent, WORKING, None))
        updates.append((parent, new, error))
        known[parent] = (current, new)
        if new in (DONE, ERROR):
            ended.append(current)

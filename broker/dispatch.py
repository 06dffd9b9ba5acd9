"""Dispatch: the one owner of "which device runs this request, and hand it there".

Everything the broker sends to devices goes out here, on the one device socket it is given:
requests (placed, then handed out, each signed afresh), messages for the device that holds a
session (``interrupt_request``, ``shutdown_request``), and the bus's own notes to a device
(heartbeats, acks, drain replies). Other modules ask; none of them holds the socket.

What it decides and remembers:

- **Placement** (:meth:`Dispatch.place`), by :class:`broker.placement.DeviceTable`'s rule, plus
  the order rule: a later request of a session waits behind its earlier ones in the store
  while any of them wait for a free place (:attr:`held`), were stored to wait
  (:meth:`Dispatch.queued`) or given back (:meth:`Dispatch.take_back`) and no pass has
  handed them out yet, are in the running pass, or are with a device that takes no more work
  (:meth:`Dispatch.stranded`: the later one would go to a new worker elsewhere, ahead).
  Requests of other sessions go straight out meanwhile: under load a pass no longer makes
  every request that arrives during it wait for the next one, which kept a busy broker
  passing (two more writes and reads per request) for as long as requests kept coming.
  A new session with every live device full is refused (:class:`NoRoom`).
- **Handed out** (:attr:`handed`): requests given to a device by this broker process, in order,
  so a device's report is reconciled only with what was handed out before it arrived.
- **Requeue**: a device that cannot be reached now (EHOSTUNREACH: it reconnects after a broker
  rebind or a network blip) gets its requests again after :data:`REDISPATCH_AFTER` seconds; one
  lost or drained gives them back (:meth:`Dispatch.take_back`) and :meth:`dispatch_pending`
  places them anew.

A request may also be held back by a predicate its owner sets (:attr:`Dispatch.hold_back`;
interact coalescing sends one run of an interact at a time), without this module knowing why.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import zmq

from protocol.kernels import DEFAULT_KERNEL, kernel_of
from protocol.sockets import BusSocket
from protocol.wire import Message, Session, new_id

from . import capacity
from .handed import Handed
from .placement import DeviceTable
from .sessions import OpenSessions
from .store import NEEDS_WORK, Request, Store, StoreError

#: Seconds before requests a device could not be sent are dispatched again.
REDISPATCH_AFTER = 0.5

Spawn = Callable[[Coroutine[Any, Any, Any], str], Any]


class NoRoom(Exception):
    """A request needs a new session and every live device is full: retry in ``retry_after``."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(capacity.refusal_text(retry_after))
        self.retry_after = retry_after


class Dispatch:
    """Places requests on devices and sends them, and everything else meant for a device."""

    def __init__(self, *, wire: Session, store: Store, devices: DeviceTable,
                 sessions: OpenSessions, sock: BusSocket, spawn: Spawn,
                 log: logging.Logger) -> None:
        self.wire, self.store, self.devices, self.sessions = wire, store, devices, sessions
        self._sock = sock
        self._spawn = spawn
        self.log = log
        #: Begins every hand-out nonce of this process: what a device says of a hand-out a
        #: previous broker made is told apart (:meth:`ours`) without its memory.
        self.epoch = uuid.uuid4().hex[:6]
        self.handed = Handed(self.epoch)
        #: Whether a request must wait although its device is known (set by its owner).
        self.hold_back: Callable[[Request], bool] = lambda request: False
        #: Told (session, device) at each hand-out: who may send that session's output.
        self.on_handed: Callable[[str, str], None] = lambda session, device: None
        #: Sessions whose queued requests wait for a free place (as of the last pass).
        self._held: set[str] = set()
        #: Sessions with a request stored to wait -> the passes begun when it was stored.
        self._queued: dict[str, int] = {}
        #: Sessions with requests the running pass has yet to hand out.
        self._passing: set[str] = set()
        #: Sessions closed while the running pass had requests of them: it hands out none of
        #: them (their closer ends them: broker/control.py).
        self._released: set[str] = set()
        self._passes = 0
        self._lock = asyncio.Lock()
        self._redispatching = False
        self._soon = False

    # -- what others may read -----------------------------------------------------------------

    def ours(self, nonce: object) -> bool:
        """Whether ``nonce`` (a message's ``metadata.cellbus.sent``) is of a hand-out this
        broker process made."""
        return isinstance(nonce, str) and nonce.startswith(self.epoch)

    @property
    def held(self) -> frozenset[str]:
        """Sessions whose queued requests wait for a free place (as of the last pass)."""
        return frozenset(self._held)

    def release(self, session_id: str) -> None:
        """The session is gone (restarted): its requests no longer wait for a place, nor go
        out from a pass that read them before (they end with SessionRestarted; before, such a
        pass handed them to the device as well, after they had ended)."""
        if session_id in self._passing:
            self._released.add(session_id)
        self._held.discard(session_id)
        self._queued.pop(session_id, None)

    def holding(self, session_id: str, recorded: str | None = None) -> str | None:
        """The device that holds the session: the live one its worker is on (or starting
        on), else ``recorded`` (the device the store names) while it is alive."""
        device = self.devices.holder(session_id)
        if device is None and self.devices.alive(recorded):
            device = recorded
        return device

    # -- placement ----------------------------------------------------------------------------

    def place(self, session_id: str, current: str | None, *,
              kernel: str = DEFAULT_KERNEL) -> str | None:
        """The device for a new request of ``session_id``, on a device that offers its
        ``kernel`` (None: it waits in the store, because no such device is known, or
        earlier requests of its session wait to be dispatched; its owner then calls
        :meth:`queued` once it is stored). Raises :class:`NoRoom` if it needs a new worker
        and every live device offering the kernel is full."""
        if session_id in self._held or session_id in self._queued or \
                session_id in self._passing or self.stranded(session_id):
            return None  # the dispatcher sends it after its session's earlier requests
        device = self.devices.place(session_id, current, reserve=len(self._held),
                                    kernel=kernel)
        if device is None and self.devices.offering(kernel) and \
                not self.devices.awaited(current):
            raise NoRoom(capacity.retry_after())
        return device

    async def recover(self) -> None:
        """At start: sessions with requests a previous broker left ``needs_work`` wait behind
        them, as behind :meth:`queued` ones, until a pass has handed those out."""
        for request in await self.store.requests(NEEDS_WORK):
            self._queued[request.session] = self._passes

    def queued(self, session_id: str) -> None:
        """A request of ``session_id`` that :meth:`place` gave no device is stored: the
        session's later requests wait behind it until a pass that began after now has handed
        out every request of it that it found."""
        self._queued[session_id] = self._passes
        if self.devices.live():
            self.dispatch_soon()

    def stranded(self, session_id: str) -> bool:
        """Whether a request of the session is with a device that takes no more work (lost,
        draining, gone), or its hand-out is in doubt (:meth:`Handed.doubted`): the later ones
        wait, or a new worker elsewhere ran them ahead of it."""
        out = self.handed.devices_of(session_id)
        return bool(out) and (not out <= {d.device for d in self.devices.live()}
                              or self.handed.doubted(session_id))

    def take_back(self, msg_id: str, session_id: str | None = None) -> None:
        """The hand-out of ``msg_id`` is void (its device was lost, drained, restarted or not
        reachable): a pass places it anew; the session's later requests wait, as :meth:`queued`."""
        session_id = session_id or self.handed.session_of(msg_id)
        self.handed.discard(msg_id)
        if session_id is not None:
            self._queued[session_id] = self._passes

    async def note_placement(self, session_id: str, device: str) -> None:
        """Record in the store (and the open-session cache) that the session is on ``device``."""
        record = await self.store.get_session(session_id)
        if record is not None and record.device != device:
            record.device = device
            await self.store.put_session(record)
            self.sessions.stored(record)

    async def _device_of(self, request: Request) -> str | None:
        """The device ``request`` goes to if it can: its own, else its open session's (one
        stored unplaced while that device had not reported yet, :meth:`DeviceTable.awaited`)."""
        if request.device is not None:
            return request.device
        record = await self.sessions.find(request.user, request.worksheet)
        return record.device if record is not None and record.session == request.session \
            else None

    async def _elsewhere(self, request: Request, device: str) -> bool:
        """Whether the store names another device (or none) for ``request``'s open session
        than ``device``, where it goes: a restarted broker reads a session's device from
        the store (broker/devices.py), so it is written first (a device taken for lost left
        it on none; a write of it failed)."""
        record = await self.sessions.find(request.user, request.worksheet)
        return record is not None and record.session == request.session and \
            record.device != device

    # -- handing out --------------------------------------------------------------------------

    async def send(self, request: Request) -> bool:
        """Hand ``request`` to its device; False if it is not to go, or the device is not
        reachable now (then every waiting request is dispatched again shortly)."""
        if request.msg_id in self.handed or request.device is None:
            return False
        if self.hold_back(request):
            return False
        routing_id = self.devices.routing_id(request.device)
        if routing_id is None:
            return False
        # Each hand-out is signed afresh (a nonce in the routing facts): a device that gets a
        # request again, as reconciliation may send it, must not take it for a replay.
        nonce = self.epoch + new_id()[:12]
        self.handed.add(request.msg_id, nonce, session=request.session, device=request.device)
        self.on_handed(request.session, request.device)
        message = dict(request.message)
        metadata = dict(message.get("metadata") or {})
        metadata["cellbus"] = {**(metadata.get("cellbus") or {}), "sent": nonce,
                               "handed": self.handed.token()}
        message["metadata"] = metadata
        try:
            await self.wire.send(self._sock, message, [routing_id])
        except zmq.ZMQError as e:
            self.take_back(request.msg_id, request.session)
            self.log.warning("broker could not reach device %s: %s; trying again in %g s",
                             request.device, e, REDISPATCH_AFTER)
            if not self._redispatching:  # it reconnects (a broker rebind, a network blip)
                self._redispatching = True
                self._spawn(self._redispatch(), "redispatch")
            return False
        return True

    async def send_to(self, device: str, message: Message) -> bool:
        """Send ``message`` to ``device`` (one that holds a session: see :meth:`holding`);
        False if the broker cannot reach it now."""
        routing_id = self.devices.routing_id(device)
        if routing_id is None:
            return False
        try:
            await self.wire.send(self._sock, message, [routing_id])
        except zmq.ZMQError as e:
            self.log.info("broker could not send %s to device %s: %s", message["msg_type"],
                          device, e)
            return False
        return True

    async def send_to_holder(self, session_id: str, recorded: str | None,
                             message: Message) -> bool:
        """Send ``message`` to the device holding the session (:meth:`holding`); False if
        none holds it or the broker cannot reach it now."""
        device = self.holding(session_id, recorded)
        return device is not None and await self.send_to(device, message)

    def post(self, routing_id: bytes, message: Message) -> None:
        """Send a note of the bus (heartbeat, ack, drain reply) now, or not at all: a device
        not connected now gets the next one."""
        self.offer(routing_id, message)

    def post_to(self, device: str, message: Message) -> None:
        """:meth:`post` to ``device`` on the link it was last heard on (a device makes its
        link anew under another routing id when the broker stops hearing it)."""
        self.offer(self.devices.routing_id(device) or device.encode(), message)

    def offer(self, routing_id: bytes, message: Message) -> bool:
        """:meth:`post`, saying whether the note went (True) or not."""
        try:
            return self._sock.send_now(self.wire.serialize(message, [routing_id]))
        except zmq.ZMQError:
            return False

    async def _redispatch(self) -> None:
        await asyncio.sleep(REDISPATCH_AFTER)
        self._redispatching = False
        self.dispatch_soon()

    # -- dispatch passes ----------------------------------------------------------------------

    async def dispatch_pending(self) -> None:
        """Place and send every ``needs_work`` request not yet handed out, oldest first.

        A request whose session needs a new worker waits (in :attr:`held`) while no live
        device has a free place, and the later requests of its session wait behind it; a
        device's report of a free place dispatches again."""
        async with self._lock:
            await self._dispatch()

    def dispatch_soon(self) -> None:
        """Run :meth:`dispatch_pending` once more, after any pass now running."""
        if not self._soon:
            self._soon = True
            self._spawn(self._dispatch_later(), "dispatch")

    def room_freed(self) -> None:
        """A device reported: if requests wait for a place and there is one, dispatch."""
        if self._held and self.devices.room() > 0:
            self.dispatch_soon()

    async def _dispatch_later(self) -> None:
        async with self._lock:
            self._soon = False  # requests stored from now on need another pass
            await self._dispatch()

    async def _dispatch(self) -> None:
        self._passes += 1
        begun = self._passes  # every request queued before this was stored before the read
        todo = [r for r in await self.store.requests(NEEDS_WORK)
                if r.msg_id not in self.handed]
        last = {r.session: r.msg_id for r in todo}  # each session's last request here
        self._passing = set(last)
        held: set[str] = set()
        try:
            await self._pass(todo, held, last, begun)
        finally:
            self._passing, self._released = set(), set()
            for session_id, stored in list(self._queued.items()):
                if stored < begun and session_id not in last:  # found nothing of it: gone
                    del self._queued[session_id]
        if held and not self._held:
            self.log.info("broker: %d sessions wait for a free place on a device", len(held))
        self._held = held

    async def _pass(self, todo: list[Request], held: set[str], last: dict[str, str],
                    begun: int) -> None:
        """Place and send ``todo`` in order; a session all of whose requests here went out
        stops waiting (:attr:`_passing`, and :attr:`_queued` if none was stored since the
        pass began), so its next request goes straight out. A session one of whose requests
        could not be sent sends none after it in this pass; one :meth:`stranded` waits."""
        unsent: set[str] = set()
        for request in todo:
            session_id = request.session
            if session_id in held or session_id in unsent:
                continue
            if request.msg_id in self.handed:  # went straight out since the pass's read
                self._went_out(request, last, begun)
                continue
            if not self.devices.live():
                return
            if self.stranded(session_id):
                held.add(session_id)  # tried again when a device reports (room_freed)
                continue
            device = self.devices.place(session_id, await self._device_of(request),
                                        kernel=kernel_of(request.message["metadata"]))
            if device is None:
                held.add(session_id)
                continue
            if device != request.device or await self._elsewhere(request, device):
                try:
                    request = await self.store.assign_request(request.msg_id, device)
                    await self.note_placement(session_id, device)
                except StoreError as e:  # placed by a later pass, once the store writes
                    self.log.warning("broker: could not place request %s now: %s",
                                     request.msg_id, e)
                    held.add(session_id)
                    continue
            if session_id in self._released:
                continue
            if not await self.send(request):
                if request.msg_id not in self.handed and not self.hold_back(request):
                    unsent.add(session_id)  # not reachable now: sent again after a while
            else:
                self._went_out(request, last, begun)

    def _went_out(self, request: Request, last: dict[str, str], begun: int) -> None:
        """``request`` of the running pass is handed out: if it was its session's last one
        there, the session waits no more (unless a request of it was stored to wait since
        the pass began)."""
        session_id = request.session
        if last[session_id] == request.msg_id:
            self._passing.discard(session_id)
            if self._queued.get(session_id, begun) < begun:
                del self._queued[session_id]

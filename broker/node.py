"""The broker: the persistent buffer between gateways and devices.

It is the ZeroMQ Guide's Clone pattern with Titanic's discipline. Only the broker assigns
``seq``; a request is persisted before a gateway is told it was accepted, and an output
message is persisted (and given its session's next ``seq``) before it is published, so any
subscriber can catch up from the store: "the database is merely a large buffer".

Sockets::

    ROUTER  --gateway-bind   gateways' DEALERs: requests in, one reply each out
    PUB     --publish-bind   every persisted output; topic = session id;
                             metadata["cellbus"] carries seq, session, user, worksheet, cell_id
    ROUTER  --device-bind    devices' DEALERs: work out; output, heartbeats, closures in

Gateway requests carry the cell address in ``metadata["cellbus"]`` (user, worksheet, cell_id)
and are answered by :mod:`broker.intake`.

On SIGTERM the broker stops taking requests, stores the output devices already sent it, and
closes its store, which commits every write still queued. In the background it compacts the
message logs of sessions finished longer ago than ``--retention`` (:mod:`broker.retention`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from typing import Any, cast

import zmq

from protocol import msgtypes as mt
from protocol.errors import ConfigError, ProtocolError
from protocol.kernels import kernel_of
from protocol.node import Node
from protocol.requests import Endings
from protocol.wire import Message, Session

from . import capacity, memory, retention
from .cells import Cells
from .devices import DeviceWatch, Handed
from .intake import Intake
from .metrics import BrokerMetrics
from .placement import DeviceTable
from .quotas import QuotaConfig, Quotas
from .receipts import Receipts, Verdict
from .store import (DONE, ERROR, NEEDS_WORK, WORKING, DeviceRecord, InvalidTransition, Request,
                    StoreError,
                    Store, UnknownRequest)
from .store.base import StatusUpdate

#: Seconds before requests a device could not be sent are dispatched again.
REDISPATCH_AFTER = 0.5
#: Output messages persisted in one group commit at most.
MAX_OUTPUT_BATCH = 256
#: Seconds between seq beacons, and how long after its last output a session is included.
BEACON_INTERVAL = 1.0
BEACON_WINDOW = 5.0

log = logging.getLogger("cellbus.broker")


class Broker(Node):
    name = "broker"

    def __init__(self, session: Session, store: Store, *, gateway_bind: str, device_bind: str,
                 publish_bind: str, feed_hwm: int = mt.FEED_HWM,
                 retention_period: float = retention.DEFAULT_RETENTION,
                 quotas: QuotaConfig = QuotaConfig()) -> None:
        super().__init__(session)
        self.store = store
        self.endpoints = (gateway_bind, device_bind, publish_bind)
        self.feed_hwm = feed_hwm
        self.devices = DeviceTable()
        self.quotas = Quotas(quotas, self.devices, store)
        self.cells = Cells(store)
        self.sent = Handed()  # requests handed to a device by this broker process
        self.unsynced: set[str] = set()  # devices heard from, but not yet reconciled
        self.replied = Endings()  # requests whose reply is in, the idle after it not yet
        self.recent_seqs: dict[str, tuple[int, float]] = {}  # session -> (last seq, when)
        #: Sessions whose queued requests wait for a free place (as of the last dispatch).
        self.held: set[str] = set()
        self._dispatching = asyncio.Lock()
        self._redispatching = False
        self._dispatch_soon = False
        self.retention_period = retention_period
        #: Held while a batch from devices is being stored; SIGTERM waits for it.
        self._persisting = asyncio.Lock()
        #: device_drain messages of the batch being stored, handled once it is stored.
        self._drains: list[tuple[str, Message]] = []
        #: What of each device's outbox is stored (exactly once; loaded from the store).
        self.receipts = Receipts()
        #: Since when (monotonic) the store has refused writes, or None while it writes.
        self.store_failing: float | None = None
        self.metrics: BrokerMetrics = BrokerMetrics(self)

    async def setup(self) -> None:
        gateway_bind, device_bind, publish_bind = self.endpoints
        try:
            await self.store.open()
        except StoreError as e:
            raise ConfigError(f"broker cannot open its store: {e}") from None
        self.log.info("broker store: %s", self.store.describe())
        self.gateways = self.socket(zmq.ROUTER, bind=gateway_bind, label="ROUTER for gateways",
                                    role="gateway", option="--gateway-bind")
        self.pub = self.socket(zmq.PUB, bind=publish_bind, label="PUB for gateways",
                               role="gateway", option="--publish-bind")
        self.pub.sndhwm = self.feed_hwm
        self.device_sock = self.socket(zmq.ROUTER, bind=device_bind, label="ROUTER for devices",
                                       role="device", option="--device-bind")
        self.intake = Intake(self)
        try:
            await self.intake.sessions.load()
            self.receipts = Receipts(await self.store.receipts())
        except StoreError as e:
            raise ConfigError(f"broker cannot read its store: {e}") from None
        self.watch = DeviceWatch(self)
        self.spawn(self._gateway_loop(), "gateways")
        self.spawn(self._device_loop(), "devices")
        self.spawn(self.watch.heartbeats(), "heartbeats")
        self.spawn(self._beacons(), "beacons")
        self.spawn(memory.trim_after_bursts(), "memory")
        if self.retention_period > 0:
            self.spawn(retention.run(self.store, self.retention_period, self.log), "retention")
        else:
            self.log.info("broker retention: off (--retention 0); message logs are kept whole")

    async def shutdown(self) -> None:
        """Stop taking work, store what devices already sent, then commit and close the
        store: nothing acknowledged or published is lost, nor any output received."""
        async with self._persisting:  # the batch being stored, if any, is stored first
            await self.cancel_loops()
            await self._store_received()
        await self.cancel_loops()  # anything the last batch started
        await self.store.close()
        self.log.info("broker: store flushed and closed")

    async def _store_received(self) -> None:
        """Store the output messages already received from devices but not yet read (what
        cannot be stored stays in the devices' outboxes for the next broker)."""
        outputs: list[tuple[str, Message]] = []
        try:
            while cast(int, self.device_sock.get(zmq.EVENTS)) & zmq.POLLIN:
                got = await self.recv(self.device_sock)
                if got is not None:
                    self._sort(got[0], got[1], outputs)
        except zmq.ZMQError as e:
            self.log.warning("broker: while stopping, could not read from devices: %s", e)
        if await self._store_batch(outputs) and outputs:
            self.log.info("broker: stored %d output messages received while stopping",
                          len(outputs))

    # -- gateways ---------------------------------------------------------------------------

    async def _gateway_loop(self) -> None:
        while True:
            got = await self.recv(self.gateways)
            if got is not None:
                idents, msg = got
                self.spawn(self.intake.handle(idents, msg), f"intake.{msg['msg_id'][:8]}")

    async def reply(self, idents: list[bytes], request: Message, msg_type: str,
                    content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        msg = self.session.msg(msg_type, content, parent=request)
        if buffers:
            msg["buffers"] = buffers
        try:
            try:
                await self.session.send(self.gateways, msg, idents)
            except ProtocolError as e:  # stored content this bus's packer cannot carry
                self.log.error("broker cannot encode its %s: %s", msg_type, e)
                await self.session.send(self.gateways, self.session.msg(msg_type, {
                    "ok": False, "http_status": 500, "error": "the broker could not encode "
                    "this answer; its log has the details"}, parent=request), idents)
        except zmq.ZMQError as e:  # the gateway went away; it will ask again
            self.log.info("broker could not answer gateway: %s", e)

    # -- devices ----------------------------------------------------------------------------

    async def send_to_device(self, request: Request) -> bool:
        """Hand ``request`` to its device; False if the device is not reachable now."""
        if request.msg_id in self.sent or request.device is None:
            return False
        if self.intake.interacts.holds(request):
            return False  # coalesced: sent when the run before it ends
        routing_id = self.devices.routing_id(request.device)
        if routing_id is None:
            return False
        self.sent.add(request.msg_id)
        # Each hand-out is signed afresh (a nonce in the routing facts): a device that gets a
        # request again, as reconciliation may send it, must not take it for a replay.
        message = dict(request.message)
        metadata = dict(message.get("metadata") or {})
        metadata["cellbus"] = {**(metadata.get("cellbus") or {}), "sent": uuid.uuid4().hex[:12]}
        message["metadata"] = metadata
        try:
            await self.session.send(self.device_sock, message, [routing_id])
        except zmq.ZMQError as e:
            self.sent.discard(request.msg_id)
            self.log.warning("broker could not reach device %s: %s; trying again in %g s",
                             request.device, e, REDISPATCH_AFTER)
            if not self._redispatching:  # it reconnects (a broker rebind, a network blip)
                self._redispatching = True
                self.spawn(self._redispatch(), "redispatch")
            return False
        return True

    async def _redispatch(self) -> None:
        await asyncio.sleep(REDISPATCH_AFTER)
        self._redispatching = False
        self.dispatch_soon()

    @property
    def dispatching(self) -> bool:
        return self._dispatching.locked()

    async def dispatch_pending(self) -> None:
        """Place and send every ``needs_work`` request not yet handed out, oldest first.

        A request whose session needs a new worker waits (in :attr:`held`) while no live
        device has a free place, and the later requests of its session wait behind it; a
        device's report of a free place dispatches again."""
        async with self._dispatching:
            await self._dispatch()

    def dispatch_soon(self) -> None:
        """Run :meth:`dispatch_pending` once more, after any pass now running."""
        if not self._dispatch_soon:
            self._dispatch_soon = True
            self.spawn(self._dispatch_later(), "dispatch")

    async def _dispatch_later(self) -> None:
        async with self._dispatching:
            self._dispatch_soon = False  # requests stored from now on need another pass
            await self._dispatch()

    async def _dispatch(self) -> None:
        held: set[str] = set()
        for request in await self.store.requests(NEEDS_WORK):
            if request.msg_id in self.sent or request.session in held:
                continue
            if not self.devices.live():
                break
            device = self.devices.place(request.session, request.device,
                                        kernel=kernel_of(request.message["metadata"]))
            if device is None:
                held.add(request.session)
                continue
            if device != request.device:
                try:
                    request = await self.store.assign_request(request.msg_id, device)
                    await self.intake.note_placement(request.session, device)
                except StoreError as e:  # placed by a later pass, once the store writes
                    self.log.warning("broker: could not place request %s now: %s",
                                     request.msg_id, e)
                    held.add(request.session)
                    continue
            await self.send_to_device(request)
        if held and not self.held:
            self.log.info("broker: %d sessions wait for a free place on a device", len(held))
        self.held = held

    async def _device_loop(self) -> None:
        while True:
            batch = [await self.recv(self.device_sock)]
            async with self._persisting:
                batch += self.recv_waiting(self.device_sock, MAX_OUTPUT_BATCH - 1)
                outputs: list[tuple[str, Message]] = []
                for got in batch:
                    if got is not None:
                        self._sort(got[0], got[1], outputs)
                await self._store_batch(outputs)
                drains, self._drains = self._drains, []
                for device, msg in drains:  # after the output the device sent before them
                    await self.watch.drained(device, msg)

    def _sort(self, idents: list[bytes], msg: Message, outputs: list[tuple[str, Message]]) -> None:
        kind = msg["msg_type"]
        content = msg["content"]
        device = (idents[0] if idents else b"").decode(errors="replace")
        if kind in (mt.DEVICE_REGISTER, mt.DEVICE_HEARTBEAT):
            fresh = self.devices.heard(device, idents[0], content)
            if fresh or kind == mt.DEVICE_REGISTER or device in self.unsynced:
                self.unsynced.discard(device)
                self.log.info("broker: device %s registered (capacity %s, load %s)", device,
                              content.get("capacity"), content.get("load"))
                self.spawn(self._device_joined(device, content, self.sent.mark()),
                           f"joined.{device}")
            elif self.held and self.devices.room() > 0:
                self.dispatch_soon()  # a place freed up for requests that wait
            return
        if kind == mt.DEVICE_DRAIN:
            self.devices.heard(device, idents[0])
            self.devices.drain(device)
            self._drains.append((device, msg))
            return
        if self.devices.heard(device, idents[0]):
            self.unsynced.add(device)  # reconcile with its next report, which lists its work
        if kind == mt.SESSION_CLOSED:
            self.log.info("broker: device %s closed session %s (%s)", device,
                          content.get("session"), content.get("reason"))
            if isinstance(content.get("session"), str):
                self.devices.closed(device, content["session"])
            return
        facts = msg["metadata"].get("cellbus")
        if self.receipts.admit(device, facts) in (Verdict.DUPLICATE, Verdict.GAP):
            return  # stored already, or out of order: the device's ack says what to send
        session_id = facts.get("session") if isinstance(facts, dict) else None
        if isinstance(facts, dict):  # delivery bookkeeping stays between device and broker
            for key in ("out", "try", "sent"):
                facts.pop(key, None)
        if not isinstance(session_id, str) or not session_id:
            self.rejected["no-session"] += 1
            self.log.warning("broker dropped a %s from device %s: no session", kind, device)
            return
        self.devices.spoke(device, session_id)
        if kind in (mt.ERROR, mt.EXECUTE_REPLY) and content.get("ename") == capacity.AT_CAPACITY:
            parent = msg["parent_header"].get("msg_id")  # the same N in both messages
            capacity.explain_refusal(content, capacity.retry_after(random.Random(parent)))
            if kind == mt.ERROR:
                self.log.warning("broker: device %s had no room for session %s", device,
                                 session_id)
        outputs.append((session_id, msg))

    async def _device_joined(self, device: str, report: dict[str, Any], mark: int) -> None:
        try:
            await self.store.put_device(DeviceRecord(
                device=device, capacity=int(report.get("capacity") or 0),
                load=int(report.get("load") or 0), last_heartbeat=time.time(),
                info={}))
            await self.watch.joined(device, report, mark)
        except StoreError as e:  # reconciled with its next heartbeat instead
            self.unsynced.add(device)
            self.log.warning("broker: could not reconcile device %s now: %s", device, e)

    async def _store_batch(self, outputs: list[tuple[str, Message]]) -> bool:
        """Store a batch read from the devices with their receipts, then acknowledge it to
        each device. If the store cannot write, the batch is dropped unacknowledged (the
        devices keep it and send it again) and the broker goes on: False."""
        receipts = self.receipts.pending()
        outputs = self.quotas.screen(outputs)  # output past a quota becomes a notice
        if outputs or receipts:
            try:
                await self.persist_and_publish(outputs, receipts,
                                               size=self.quotas.output.kept_bytes)
            except StoreError as e:
                self.receipts.abandon()
                self.quotas.forget_screened()
                if self.store_failing is None:
                    self.store_failing = time.monotonic()
                    self.log.error("broker: the store cannot write (%s); devices keep their "
                                   "output until it can, new work is refused meanwhile", e)
                return False
        if self.store_failing is not None and (outputs or receipts):
            self.log.warning("broker: the store writes again, after %.0f s",
                             time.monotonic() - self.store_failing)
            self.store_failing = None
        self.receipts.stored_batch()
        for device, content in self.receipts.acks():
            ack = self.session.msg(mt.OUTPUT_ACK, content)
            try:
                self.device_sock.send_now(self.session.serialize(ack, [device.encode()]))
            except zmq.ZMQError:
                pass  # gone; it sends again when it is back
        return True

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
        for _, msg in outputs:
            parent = msg["parent_header"].get("msg_id")
            if isinstance(parent, str):
                await self._advance(parent, msg, known, updates, ended)
        started = time.monotonic()
        seqs, updated = await self.store.append_and_update(outputs, updates, receipts)
        self.metrics.stored(outputs, time.monotonic() - started, size)
        for request in updated:
            if request is not None:
                self.cells.refresh(request)
        for (_session_id, msg), seq in zip(outputs, seqs):
            msg["metadata"]["cellbus"]["seq"] = seq
            parent = msg["parent_header"].get("msg_id")
            if isinstance(parent, str) and not self.intake.interacts.apply(parent, seq, msg):
                self.cells.apply(parent, seq, msg)
        for request in ended:
            self.sent.discard(request.msg_id)
            await self.intake.interacts.finished(request)  # its slot frees, whatever the store said
        now = time.monotonic()
        for session_id, msg in outputs:
            await self.session.send(self.pub, msg, [session_id.encode()])
            self.recent_seqs[session_id] = (msg["metadata"]["cellbus"]["seq"], now)

    async def _beacons(self) -> None:
        """Clone pattern: publish each recently active session's last seq every second (for
        BEACON_WINDOW seconds after its last output), so a subscriber whose feed dropped the
        tail of a burst sees that it is behind and catches up from the store."""
        while True:
            await asyncio.sleep(BEACON_INTERVAL)
            cutoff = time.monotonic() - BEACON_WINDOW
            self.recent_seqs = {s: v for s, v in self.recent_seqs.items() if v[1] >= cutoff}
            if self.recent_seqs:
                beacon = self.session.msg(mt.SEQ_BEACON, {"sessions": {
                    s: seq for s, (seq, _) in self.recent_seqs.items()}})
                await self.session.send(self.pub, beacon, [b""])

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
        if parent not in known:
            view = self.cells.cached(parent)
            request = view.request if view else await self.store.get_request(parent)
            known[parent] = None if request is None else (request, request.status)
        entry = known[parent]
        if entry is None or entry[1] == new:
            return
        current, status = entry
        if new == DONE and status == NEEDS_WORK:
            updates.append((parent, WORKING, None))
        updates.append((parent, new, error))
        known[parent] = (current, new)
        if new in (DONE, ERROR):
            ended.append(current)

    async def _set_status(self, request: Request, status: str,
                          error: str | None = None) -> Request | None:
        try:
            return await self.store.update_request(request.msg_id, status, error=error)
        except (InvalidTransition, UnknownRequest) as e:
            self.log.debug("broker: %s", e)
            return None

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
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import zmq

from protocol import msgtypes as mt
from protocol.curve import ServerKeys
from protocol import records
from protocol.errors import ConfigError, ProtocolError, StoppedBeforeStart
from protocol.heartbeat import device_name
from protocol.node import Node
from protocol.requests import Endings
from protocol.version import version_skew
from protocol.wire import Message, Session

from . import capacity, memory, retention
from .batches import Batches
from .cells import Cells
from .closures import SessionEnds
from .control import Control
from .devices import DeviceWatch
from .gatewaylinks import GatewayLinks
from .gateways import Gateways
from .dispatch import REDISPATCH_AFTER, Dispatch
from .handed import Handed
from .intake import Intake
from .interacts import Interacts
from .metrics import BrokerMetrics
from .output import BEACON_INTERVAL, BEACON_WINDOW, Outputs
from .placement import DeviceTable
from .prompts import Prompts
from .quotas import QuotaConfig, Quotas
from .receipts import Receipts, Verdict
from .revocation import Revocations
from .senders import MAX_SESSIONS, Judgement, Senders
from .sessions import OpenSessions
from .store import OPEN, DeviceRecord, Request, Store, StoreError
from .store_owner import StoreClaim, watch_store_file
from .storewait import open_when_reachable

__all__ = ["BEACON_INTERVAL", "BEACON_WINDOW", "MAX_OUTPUT_BATCH", "REDISPATCH_AFTER",
           "Broker"]

#: Output messages persisted in one group commit at most.
MAX_OUTPUT_BATCH = 256

log = logging.getLogger("cellbus.broker")


class Broker(Node):
    """Wires the broker's parts to its sockets; its own job is the loops that read them.

    The parts import in layers (tests/test_architecture.py checks there is no cycle):
    :mod:`broker.dispatch` places and sends to devices, :mod:`broker.interacts` coalesces
    interact runs, :mod:`broker.output` stores and publishes output, :mod:`broker.devices`
    reconciles devices, :mod:`broker.control` and :mod:`broker.intake` answer gateways.
    """

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
        self.sessions = OpenSessions(store)
        self.unsynced: set[str] = set()  # devices heard from, but not yet reconciled
        self.retention_period = retention_period
        #: Held while a batch from devices is being stored; SIGTERM waits for it.
        self._persisting = asyncio.Lock()
        #: device_drain messages of the batch being stored, handled once it is stored.
        self._drains: list[tuple[str, Message]] = []
        self.metrics: BrokerMetrics = BrokerMetrics(self)
        self.claim = StoreClaim(store)
        #: The SQLite file of the store, watched while the broker runs (broker/store_owner.py).
        self.store_file: Path | None = None
        #: Seconds to go on trying a store that does not answer at start (--store-wait).
        self.store_wait = math.inf

    def _store_gone(self, why: str) -> None:
        """The store went from under the broker (its file, or another broker took it over):
        stop, exit status 1."""
        self.log.error("broker: %s", why)  # which says it stops
        self.crashed = True
        self.request_stop(said=True)

    async def setup(self) -> None:
        gateway_bind, device_bind, publish_bind = self.endpoints
        try:
            if not await open_when_reachable(self.store, self.log, self.wait_stop_requested,
                                             wait=self.store_wait):
                raise StoppedBeforeStart(f"broker stopped before its store answered "
                                         f"({self.store.describe()})")
        except StoreError as e:
            raise ConfigError(f"broker cannot open its store: {e}") from None
        self.log.info("broker store: %s", self.store.describe())
        await self.claim.take()  # before anything is read: one broker per store
        self.spawn(self.claim.keep(self._store_gone), "store-claim")
        if self.store_file is not None:
            self.spawn(watch_store_file(self.store_file, self._store_gone), "store-file")
        self.gateways = self.socket(zmq.ROUTER, bind=gateway_bind, label="ROUTER for gateways",
                                    role="gateway", option="--gateway-bind")
        self.pub = self.socket(zmq.PUB, bind=publish_bind, label="PUB for gateways",
                               role="gateway", option="--publish-bind")
        self.pub.sndhwm = self.feed_hwm
        self.device_sock = self.socket(zmq.ROUTER, bind=device_bind, label="ROUTER for devices",
                                       role="device", option="--device-bind")
        if isinstance(self.keys, ServerKeys):  # each device connection's key, for Senders
            self.device_sock.note_peer_keys()
        self.senders = Senders(self.devices, self.rejected, self.log,
                               peer_keys=self.device_sock.peer_keys,
                               holder=(self.keys.roles.holder
                                       if isinstance(self.keys, ServerKeys) else None))
        self._wire(self.session, self.store)
        self.gateway_links = GatewayLinks(node=self, sock=self.gateways, pub=self.pub,
                                          wire=self.session, gateways=self.heard_gateways,
                                          log=self.log)
        self.dispatch.on_handed = self.senders.handed_to
        try:
            self.senders.seed(await self.store.sessions(OPEN, newest=MAX_SESSIONS))
            await self.sessions.load()
            await self.dispatch.recover()
            self.senders.seed(await self.intake.deletion.resume(self.log))
            self.batches.receipts = Receipts(await self.store.receipts())
        except StoreError as e:
            raise ConfigError(f"broker cannot read its store: {e}") from None
        self.revocations: Revocations | None = None
        if isinstance(self.keys, ServerKeys):
            assert self.device_sock.peer_keys is not None
            self.revocations = Revocations(
                keys=self.keys, wire=self.session, device_keys=self.device_sock.peer_keys,
                gateways=self.gateways, pub=self.pub,
                monitor_socket=lambda ep: self.socket(zmq.PAIR, connect=ep,
                                                      label="feed monitor"),
                post_device=self.dispatch.post, senders=self.senders,
                forget_device=self._forget_device, rejected=self.rejected, log=self.log)
            self.spawn(self.revocations.run(), "revocations")
        self.spawn(self._gateway_loop(), "gateways")
        self.spawn(self._device_loop(), "devices")
        self.spawn(self.watch.heartbeats(), "heartbeats")
        self.spawn(self.outputs.beacons(), "beacons")
        self.spawn(self.heard_gateways.watch(), "gateway-watch")
        self.spawn(memory.trim_after_bursts(), "memory")
        if self.retention_period > 0:
            self.spawn(retention.run(self.store, self.retention_period, self.log), "retention")
        else:
            self.log.info("broker retention: off (--retention 0); message logs are kept whole")

    def _wire(self, wire: Session, store: Store) -> None:
        """Make the parts, each given only the parts it calls (lowest layer first)."""
        log = self.log
        self.dispatch = Dispatch(wire=wire, store=store, devices=self.devices,
                                 sessions=self.sessions, sock=self.device_sock,
                                 spawn=self.spawn, log=log)
        self.interacts = Interacts(wire=wire, store=store, cells=self.cells,
                                   sessions=self.sessions, dispatch=self.dispatch,
                                   budget=self.quotas.budget)
        self.dispatch.hold_back = self.interacts.holds  # one run of an interact at a time
        prompts = Prompts(wire=wire, store=store, sessions=self.sessions, dispatch=self.dispatch)
        self.outputs = Outputs(wire=wire, store=store, pub=self.pub, cells=self.cells,
                               interacts=self.interacts, prompts=prompts,
                               handed=self.dispatch.handed,
                               metrics=self.metrics, log=log)
        self.ends = SessionEnds(wire=wire, store=store, outputs=self.outputs, log=log)
        self.watch = DeviceWatch(wire=wire, store=store, dispatch=self.dispatch,
                                 outputs=self.outputs, metrics=self.metrics, log=log,
                                 ends=self.ends)
        self.batches = Batches(wire=wire, outputs=self.outputs, quotas=self.quotas,
                               post=self.dispatch.post_to, log=log)
        self.heard_gateways = Gateways(log)
        control = Control(wire=wire, store=store, sessions=self.sessions,
                          dispatch=self.dispatch, watch=self.watch, gateways=self.heard_gateways,
                          store_writable=lambda: self.store_failing is None, log=log,
                          refusals=(self.keys.roles.refusals
                                    if isinstance(self.keys, ServerKeys) else None))
        self.intake = Intake(wire=wire, store=store, sessions=self.sessions,
                             dispatch=self.dispatch, cells=self.cells, quotas=self.quotas,
                             metrics=self.metrics, interacts=self.interacts, control=control,
                             prompts=prompts, reply=self.reply, log=log)

    # -- what tests and metrics read (the metrics registry reads once before setup) ----------

    @property
    def sent(self) -> Handed:
        """Requests handed to a device by this broker process."""
        return self.dispatch.handed if hasattr(self, "dispatch") else Handed()

    @property
    def held(self) -> frozenset[str]:
        """Sessions whose queued requests wait for a free place on a device."""
        return self.dispatch.held if hasattr(self, "dispatch") else frozenset()

    @property
    def store_failing(self) -> float | None:
        """Since when (monotonic) the store has refused writes, or None while it writes."""
        return self.batches.failing if hasattr(self, "batches") else None

    @property
    def replied(self) -> Endings:
        """Requests whose reply is in and the idle status after it not yet."""
        return self.outputs.replied

    async def send_to_device(self, request: Request) -> bool:
        """Hand ``request`` to its device (:meth:`Dispatch.send`)."""
        return await self.dispatch.send(request)

    async def persist_and_publish(self, outputs: list[tuple[str, Message]],
                                  receipts: dict[str, tuple[str, int]] | None = None, *,
                                  size: int | None = None) -> None:
        """Store, then publish (:meth:`Outputs.persist_and_publish`)."""
        await self.outputs.persist_and_publish(outputs, receipts, size=size)

    async def shutdown(self) -> None:
        """Stop taking work, store what devices already sent, then commit and close the
        store: nothing acknowledged or published is lost, nor any output received."""
        async with self._persisting:  # the batch being stored, if any, is stored first
            await self.cancel_loops()
            await self._store_received()
        await self.cancel_loops()  # anything the last batch started
        await self.claim.release()
        await self.store.close()
        self.log.info("broker: store flushed and closed")

    async def _store_received(self) -> None:
        """Store the output messages already received from devices but not yet read (what
        cannot be stored stays in the devices' outboxes for the next broker)."""
        outputs: list[tuple[str, Message]] = []
        try:
            while cast(int, self.device_sock.get(zmq.EVENTS)) & zmq.POLLIN:
                for idents, msg in self._unbundled([await self.recv(self.device_sock)]):
                    self._sort(idents, msg, outputs)
        except zmq.ZMQError as e:
            self.log.warning("broker: while stopping, could not read from devices: %s", e)
        if await self.batches.store(outputs) and outputs:
            self.log.info("broker: stored %d output messages received while stopping",
                          len(outputs))

    # -- gateways ---------------------------------------------------------------------------

    async def _gateway_loop(self) -> None:
        while True:
            got = await self.recv(self.gateways)
            if got is not None and not (self.revocations and self.revocations.refuses(got[0])):
                idents, msg = got
                if self.gateway_links.read(idents, msg):  # a heartbeat, a probe
                    continue
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

    async def _forget_device(self, device: str, why: str) -> None:
        """Take ``device`` for lost now (its key was revoked)."""
        if device in self.devices.devices:
            self.devices.left(device)
            await self.watch.lost(device, why)

    async def _device_loop(self) -> None:
        while True:
            batch = [await self.recv(self.device_sock)]
            async with self._persisting:
                batch += self.recv_waiting(self.device_sock, MAX_OUTPUT_BATCH - 1)
                outputs: list[tuple[str, Message]] = []
                for idents, msg in self._unbundled(batch):
                    self._sort(idents, msg, outputs)
                with self.devices.storing():  # the devices' messages wait unread meanwhile
                    await self.batches.store(outputs)
                drains, self._drains = self._drains, []
                for device, msg in drains:  # after the output the device sent before them
                    await self.watch.drained(device, msg)

    def _unbundled(self, batch: list[tuple[list[bytes], Message] | None]
                   ) -> Iterator[tuple[list[bytes], Message]]:
        """The messages of ``batch`` in order, each ``records`` bundle a device sent
        (:mod:`protocol.records`) opened into the records it carries."""
        for got in batch:
            if got is None:
                continue
            if got[1]["msg_type"] != mt.RECORDS:
                yield got
                continue
            for msg in records.unbundle(self.session, got[1], self._rejected):
                yield got[0], msg

    def _sort(self, idents: list[bytes], msg: Message, outputs: list[tuple[str, Message]]) -> None:
        if (judged := self.senders.judge(idents, msg)) is Judgement.REFUSE:
            return
        kind = msg["msg_type"]
        content = msg["content"]
        device = device_name(idents[0] if idents else b"")
        if device in self.watch.taken or device in self.watch.ending:
            self.watch.came_back(device, content if kind in (
                mt.DEVICE_REGISTER, mt.DEVICE_HEARTBEAT) else None)
        if kind in (mt.DEVICE_REGISTER, mt.DEVICE_HEARTBEAT):
            fresh = self.devices.heard(device, idents[0], content)
            lost = self.batches.reported(device, content.get("stored"))
            self.watch.reported(device, content, self.senders.handed)  # once it can be told
            if fresh:  # a device that registers again, as it heard this broker, is no news
                self.watch.beat(idents[0])
                self.log.info("broker: device %s registered (capacity %s, load %s, cellbus %s)",
                              device, content.get("capacity"), content.get("load"),
                              str(content.get("version", "unknown"))[:40])
                if skew := version_skew(f"device {device}", content.get("version")):
                    self.log.warning("broker: %s", skew)
            handed = self.dispatch.handed
            upto = handed.upto(content)  # what it could see when it built the report
            relinked = self.devices.relinked(device, content)
            if fresh or relinked or kind == mt.DEVICE_REGISTER or device in self.unsynced or \
                    handed.doubtful(device, upto):
                self.unsynced.discard(device)
                self.watch.rejoined(device, content, upto)
                self.spawn(self._device_joined(device, content, upto, lost), f"joined.{device}")
            else:
                self.dispatch.room_freed()  # a place may have freed up for requests that wait
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
                self.watch.late.forget(content["session"])
                self.spawn(self.ends.closed(content["session"], str(content.get("reason"))[:200]),
                           f"closed.{content['session'][:8]}")
            return
        facts = msg["metadata"].get("cellbus")
        if self.batches.receipts.admit(device, facts) in (Verdict.DUPLICATE, Verdict.GAP):
            return  # stored already, or out of order: the device's ack says what to send
        if judged is Judgement.SKIP:
            return  # received (its outbox moves on), but not the device's to send
        if self.watch.revoked and isinstance(facts, dict) and isinstance(facts.get("sent"), str) \
                and facts["sent"] in self.watch.revoked.get(msg["parent_header"].get("msg_id"), ()):
            return  # of a hand-out taken back from a lost device: it runs from a new one
        if isinstance(facts, dict) and self.watch.stale(device, facts):
            return  # of a previous broker's hand-out to a worker told to end
        session_id = facts.get("session") if isinstance(facts, dict) else None
        if isinstance(facts, dict):  # delivery bookkeeping stays between device and broker
            for key in ("out", "try", "sent", "handed"):
                facts.pop(key, None)
        if not isinstance(session_id, str) or not session_id:
            self.rejected["no-session"] += 1
            self.log.warning("broker dropped a %s from device %s: no session", kind, device)
            return
        self.devices.spoke(device, session_id)
        if kind == mt.STATUS and content.get("execution_state") == "idle":
            idle_timeout = self.devices.devices[device].idle_timeout  # when the page warns
            if idle_timeout > 0:
                facts["idle_timeout"] = idle_timeout
        if kind in (mt.ERROR, mt.EXECUTE_REPLY) and content.get("ename") == capacity.AT_CAPACITY:
            parent = msg["parent_header"].get("msg_id")  # the same N in both messages
            capacity.explain_refusal(content, capacity.retry_after(random.Random(parent)))
            if kind == mt.ERROR:
                self.log.warning("broker: device %s had no room for session %s", device,
                                 session_id)
        outputs.append((session_id, msg))

    async def _device_joined(self, device: str, report: dict[str, Any], upto: int, lost: bool
                             ) -> None:
        try:
            await self.store.put_device(DeviceRecord(
                device=device, capacity=int(report.get("capacity") or 0),
                load=int(report.get("load") or 0), last_heartbeat=time.time(),
                info={}))
            await self.watch.joined(device, report, upto, lost)
        except StoreError as e:  # reconciled with its next heartbeat instead
            self.unsynced.add(device)
            self.log.warning("broker: could not reconcile device %s now: %s", device, e)

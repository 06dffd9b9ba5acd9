"""The device router: the device's one socket towards the broker, and request dispatch.

Shaped like the ZeroMQ Guide's Majordomo worker side: the device registers with its capacity,
sends heartbeats, takes requests addressed to sessions and hands each to the overseer, which
routes it to that session's worker (starting one if needed). Output travels back upstream on
the same socket, unchanged but for the routing facts in ``metadata["cellbus"]``.

Stopping (SIGTERM) drains (:mod:`device.draining`): no new work, running cells finish, the
requests held but not started go back to the broker.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import math
import os
import socket
import time
import uuid
from typing import Any

import zmq

from protocol import msgtypes as mt
from protocol import records
from protocol.errors import ConfigError
from protocol.heartbeat import EXPIRY, HEARTBEAT_INTERVAL, RECONNECT_AFTER, RECONNECT_EVERY
from protocol.kernels import kernel_of
from protocol.node import Node
from protocol.requests import failed, stamp
from protocol.sockets import BusSocket
from protocol.version import VERSION
from protocol.wire import Message, Session

from .draining import DRAIN_REPLY_TIMEOUT, DRAIN_TIMEOUT, Drain
from .launcher import LaunchError
from .metrics import DeviceMetrics
from .outbox import DEFAULT_CAPACITY, Outbox
from .overseer import AtCapacity, Overseer, OverseerConfig
from .relink import Unheard
from .silence import silent_link

#: Longest session id accepted; ids are made by the broker, so anything longer is garbage.
MAX_SESSION_ID = 128
#: Requests answered here remembered with when (newest kept), so a copy of one is not run again.
MAX_ANSWERED = 65536
#: Requests the device acts on.
REQUEST_TYPES = frozenset({mt.EXECUTE_REQUEST, mt.INTERACT_REQUEST, mt.KERNEL_INFO_REQUEST,
                           mt.SHUTDOWN_REQUEST, mt.INTERRUPT_REQUEST, mt.INPUT_REPLY}
                          ) | mt.KERNEL_REQUEST_TYPES


def default_device_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def sweep_interval(idle_timeout: float, exec_timeout: float) -> float:
    """How often to look for idle and overrunning workers: often enough to honour both
    timeouts closely, rarely enough to cost nothing."""
    shortest = min(t for t in (idle_timeout, exec_timeout, 20.0) if t > 0)
    return min(5.0, max(0.1, shortest / 4))


class BadRequest(Exception):
    """A signed request the device cannot act on (no session id, wrong content)."""


class DeviceRouter(Node):
    name = "device"

    def __init__(self, session: Session, *, device_id: str | None = None,
                 connect: str | None = None, bind: str | None = None,
                 config: OverseerConfig | None = None,
                 drain_timeout: float = DRAIN_TIMEOUT,
                 outbox_bytes: int = DEFAULT_CAPACITY,
                 user_outbox: int | None = None) -> None:
        super().__init__(session)
        if not (connect or bind):
            raise ValueError("a device needs --connect (or --bind) towards the broker")
        self.device_id = device_id or default_device_id()
        self.boot = uuid.uuid4().hex  # this process of the device (the broker: a restart)
        self.endpoints = (connect, bind)
        self.config = config or OverseerConfig()
        self.outbox = Outbox(self._write_up, session.serialize, capacity=outbox_bytes,
                             user_capacity=user_outbox,
                             bundle=functools.partial(records.bundle, session))
        #: msg_ids of requests whose reply went up, oldest first (see MAX_ANSWERED).
        self.answered: collections.OrderedDict[str, float] = collections.OrderedDict()
        self.metrics = DeviceMetrics(self)
        self.overseer = Overseer(bus=session, device_id=self.device_id, upstream=self.send_up,
                                 room=self.outbox.room, on_closed=self._session_closed,
                                 config=self.config)
        self.broker_heard = time.monotonic()
        self.broker_lost = False
        #: The broker's count of hand-outs before the last message of it handled here
        #: (``metadata.cellbus.handed``), reported so that the broker reconciles a report
        #: only with the hand-outs this device could see when it built it (broker/handed.py).
        self.heard: str | None = None
        #: When the link is next made anew while the broker is silent.
        self.reconnect_at = 0.0
        self.unheard = Unheard(self.device_id)  # made anew while the broker does not hear it
        self.drain = Drain(bus=session, device_id=self.device_id, overseer=self.overseer,
                           send_now=lambda frames: self.up.send_now(frames),
                           broker_alive=self._broker_alive, timeout=drain_timeout)

    async def setup(self) -> None:
        connect, bind = self.endpoints
        self.up = self.socket(zmq.DEALER, bind=bind, connect=connect,
                              label="DEALER towards the broker",
                              routing_id=self.unheard.routing_id,
                              option="--connect" if connect else "--bind")
        c = self.config
        self.log.info("device %s: up to %d sessions, %d preforked, idle timeout %g s, exec "
                      "timeout %s, limits %s, workers under %s", self.device_id,
                      c.max_sessions, c.prefork, c.idle_timeout,
                      f"{c.exec_timeout:g} s" if c.exec_timeout else "none",
                      c.launch.limits, self.overseer.root)
        try:
            await self.overseer.start()
        except LaunchError as e:  # its own error is logged above it: one line, status 2
            raise ConfigError(f"device {self.device_id} cannot start its sessions' template "
                              f"process: {e}") from None
        self.log.info("device %s offers the kernels %s (%d ready each, python %d)",
                      self.device_id, ", ".join(k["name"] for k in self.overseer.kernels),
                      c.kernel_prefork, c.prefork)
        self.spawn(self.outbox.run(), "outbox")
        self.spawn(self._serve(), "serve")
        self.spawn(self._heartbeats(), "heartbeat")
        self.spawn(self._sweep(), "sweep")
        await self._control(mt.DEVICE_REGISTER, self.status(), block=False)

    def request_stop(self, *, said: bool = False) -> None:
        self.overseer.stopping = True  # before Ctrl-C's end of the template is noticed
        super().request_stop(said=said)

    async def shutdown(self) -> None:
        await self.drain.drain()
        await self.overseer.stop()
        if self._broker_alive() and not await self.outbox.flushed(DRAIN_REPLY_TIMEOUT):
            self.log.warning("device %s: the broker has not confirmed %d output records; "
                             "leaving without them", self.device_id, len(self.outbox))
        await self.drain.hand_back(final=True)

    def status(self) -> dict[str, Any]:
        """What register and heartbeat messages report: capacity, load, live sessions, and
        the requests held (running, queued, or with output the broker has not confirmed), so
        a restarted broker can reconcile, and how many records its workers sent that it
        rejected (forged or malformed)."""
        held = self.overseer.held_requests()
        held.extend(self.outbox.parents().difference(held))
        return {"device": self.device_id, "capacity": self.config.max_sessions,
                "load": self.overseer.load, "sessions": sorted(self.overseer.workers),
                "requests": held, "draining": self.drain.draining, "outbox": len(self.outbox),
                "rejected": self.overseer.rejected, "kernels": self.overseer.kernels,
                "sandbox": self.overseer.launcher.protections.summary(),
                "limits": self.overseer.config.maxima(),
                "idle_timeout": self.config.idle_timeout, "version": VERSION, "boot": self.boot,
                "heard": self.heard, "links": self.links_made(self.endpoints[0] or ""),
                "stored": self.outbox.confirmed()}

    # -- upstream ---------------------------------------------------------------------------

    async def send_up(self, msg: Message) -> None:
        """Output for the broker: into the outbox, sent from there until stored."""
        if msg["msg_type"].endswith("_reply"):
            parent = msg["parent_header"].get("msg_id")
            if isinstance(parent, str):
                self.answered[parent] = time.monotonic()
                if len(self.answered) > MAX_ANSWERED:
                    self.answered.popitem(last=False)
        self.outbox.put(msg)

    async def _write_up(self, frames: list[bytes]) -> None:
        await self.up.send_frames(frames)

    async def _control(self, msg_type: str, content: dict[str, Any], *, block: bool = True) -> bool:
        msg = self.session.msg(msg_type, content, metadata={"cellbus": {"device": self.device_id}})
        frames = self.session.serialize(msg)
        if block:
            await self.up.send_frames(frames)
        elif not self.up.send_now(frames):
            self.log.debug("device: no broker to take %s yet", msg_type)
            return False
        return True

    async def _session_closed(self, session_id: str, reason: str) -> None:
        # (logged by the overseer, which knows the worker's end whole: device/overseer.py)
        if self.drain.left or self.up.closed:
            return  # stopping: the final hand-back tells the broker, not a message per session
        try:
            await self._control(mt.SESSION_CLOSED, {"session": session_id, "reason": reason})
        except zmq.ZMQError as e:  # the socket closed under it as the device stopped
            self.log.debug("device: could not report session %s closed: %s", session_id, e)

    async def _heartbeats(self) -> None:
        """Paranoid Pirate, device side: heartbeat the broker, and notice when it goes quiet.

        The socket is kept (not recreated) across a broker restart: ZeroMQ reconnects it by
        itself and output queued meanwhile is delivered then, so nothing is dropped. When the
        broker is heard again, the device registers anew with its live sessions. A link that
        is up while the broker stays silent is made anew (:meth:`_reconnect`)."""
        while not self.drain.left:
            before = time.monotonic()
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            if self.drain.left:
                return
            if time.monotonic() - before > 2 * HEARTBEAT_INTERVAL and not self.broker_lost:
                # This device did not run (stopped, its loop held): the broker's word waits
                # unread, it was not silent; it gets its expiry from now, its key unblamed.
                self.broker_heard = time.monotonic()
            if await self._control(mt.DEVICE_HEARTBEAT, self.status(), block=False):
                self.unheard.sent()
            self.outbox.check()
            silent = time.monotonic() - self.broker_heard
            if silent > EXPIRY and not self.broker_lost:
                self.broker_lost = True
                connect, bind = self.endpoints
                why = (self.link_problem(connect, "--device-bind", said=True)
                       or silent_link(self.links, connect, self.broker_heard, self.device_id)
                       if connect else f"is a broker connected to {bind}, with the same "
                       "--key-file as this device?")
                self.log.warning("device %s: no word from the broker for %.0f s: %s; output "
                                 "is kept until it is back", self.device_id, silent, why)
                self.reconnect_at = time.monotonic() + RECONNECT_AFTER
            if self.broker_lost:
                self._reconnect()

    def _reconnect(self) -> None:
        """The broker is silent while this device's link to it is up: connect again, after
        1 s, then every 2 s, within the broker's expiry (:data:`RECONNECT_EVERY`). A
        broker's ROUTER drops a connection whose routing id (the device's name) another
        connection still holds, for good: one of an earlier process of this device that died
        while the broker was too busy to read its end, or that froze, or whose host went
        away; this device's link then came up but nothing it sends reaches the broker. A new
        connection is taken once the old one is gone (the broker's ZMTP heartbeats end a
        silent one). Output waits in the outbox and is sent again; nothing else the broker
        needs is lost (its next report lists the device's work). A link up for less than
        :data:`RECONNECT_AFTER` is left alone: the broker (restarted) has not yet heard this
        device's heartbeat on it, and dropping it cost a missed heartbeat each restart."""
        connect, _ = self.endpoints
        now = time.monotonic()
        if not connect or now < self.reconnect_at or self.link_problem(connect, "") or \
                self.up.input_waiting():  # not silent: this device was slow to read (frozen)
            return
        if (up_for := self.link_up_for(connect)) is not None and up_for < RECONNECT_AFTER:
            return  # just made (a broker restarted): it has had no time to answer on it yet
        self.log.debug("device %s: connecting again to the broker at %s", self.device_id,
                       connect)  # every time; the line below at most every 10 s
        self.reject_log.info(("silent broker", connect), "device %s: its link to the broker "
                             "at %s is up but the broker is silent; connecting again",
                             self.device_id, connect)
        self.reconnect(self.up)
        self.reconnect_at = now + RECONNECT_EVERY

    def _relink(self) -> None:
        """The broker does not hear this device (device/relink.py): a new link, reported at
        once, and what the outbox holds unstored sent again."""
        self.log.warning("device %s: %s", self.device_id, self.unheard.words())
        self.up.routing_id = self.unheard.routing_id
        self.reconnect(self.up)
        self.outbox.again("its link was made anew")
        self.spawn(self._control(mt.DEVICE_HEARTBEAT, self.status(), block=False), "relinked")

    def link_lost(self, sock: BusSocket) -> None:
        """The link to the broker was lost: made anew at once under the next routing id
        (:meth:`Unheard.moved`), what the outbox holds unstored sent again on it."""
        if sock is self.up and self.endpoints[0] and not (sock.closed or self.drain.left
                                                          or self.crashed):  # (revoked)
            self.up.routing_id = self.unheard.moved()
            self.reconnect(self.up)
            self.outbox.again("its link was lost")

    def _broker_heard(self) -> None:
        self.broker_heard = time.monotonic()
        if self.broker_lost:
            self.broker_lost = False
            self.log.info("device %s: the broker is back; registering again", self.device_id)
            self.spawn(self._control(mt.DEVICE_REGISTER, self.status(), block=False), "register")

    async def _sweep(self) -> None:
        interval = sweep_interval(self.config.idle_timeout, self.config.exec_timeout)
        while True:
            await asyncio.sleep(interval)
            self.overseer.enforce_exec_timeout()
            await self.overseer.sweep_idle()

    # -- requests ---------------------------------------------------------------------------

    async def _serve(self) -> None:
        while True:
            got = await self.recv(self.up)
            if got is None:
                continue
            self._broker_heard()
            kind = got[1]["msg_type"]
            if kind == mt.DEVICE_DRAIN_REPLY:
                self.drain.replied(got[1]["parent_header"].get("msg_id", ""))
            elif kind == mt.BROKER_HEARTBEAT:
                self.drain.broker_beat()
                if self.unheard.says(got[1]["metadata"].get("cellbus"),
                                     self.link_up_for(self.endpoints[0] or "")):
                    self._relink()
            elif kind == mt.SESSION_CLOSED:
                await self._taken_for_lost(got[1]["content"])
            elif kind == mt.OUTPUT_ACK:
                content = got[1]["content"]
                self.outbox.ack(content.get("epoch"), content.get("stored"),
                                resend=content.get("resend") is True)
            else:
                await self.handle(got[1])
            # Only once it is handled: a report built before (the register _broker_heard
            # spawned above, a heartbeat while a request was being started) did not list it.
            facts = got[1]["metadata"].get("cellbus")
            if isinstance(facts, dict) and isinstance(facts.get("handed"), str):
                self.heard = facts["handed"][:64]

    async def handle(self, request: Message) -> None:
        try:
            session_id = self._session_of(request)
            kind = request["msg_type"]
            if kind == mt.INPUT_REPLY:
                await self._answer(session_id, request)
            elif kind == mt.INTERRUPT_REQUEST:
                worker = self.overseer.workers.get(session_id)
                ok = worker is not None and worker.interrupt()
                await self._reply(request, session_id, mt.INTERRUPT_REPLY,
                                  {"status": "ok" if ok else "error"})
            elif kind == mt.SHUTDOWN_REQUEST:  # a task: see _shut_down
                self.spawn(self._shut_down(request, session_id), f"shutdown.{session_id}")
            elif kind in mt.KERNEL_REQUEST_TYPES and not self._live(session_id):
                # A comm message or a query is for a running kernel: it never starts one, nor
                # is handed back.
                self.log.info("device: a %s for session %s, which runs nowhere here; dropped",
                              kind, session_id)
            elif self.overseer.holds(session_id, request["msg_id"]):
                self.log.info("device: request %s is here already; the copy is ignored",
                              request["msg_id"])
            elif self.answered.get(request["msg_id"], math.inf) < self.outbox.lost_at and \
                    request["msg_id"] not in self.outbox.parents():  # its reply was lost
                await self._refuse(request, "OutputLost", "this cell ran, but the broker's "
                                   "store lost its output (restored from an older copy?); "
                                   "run it again")
            elif request["msg_id"] in self.answered:  # the broker's copy crossed its reply
                self.log.info("device: request %s was answered here already; the copy is "
                              "ignored", request["msg_id"])
            else:
                if kind == mt.EXECUTE_REQUEST and not isinstance(
                        request["content"].get("code"), str):
                    raise BadRequest("execute_request content has no 'code' string")
                if self.drain.draining:  # not here any more: back to the broker with the rest
                    self.drain.hold(session_id, request)
                    return
                await self.overseer.submit(session_id, request,
                                           kernel_of(request["metadata"]))
        except (BadRequest, AtCapacity) as e:
            self.log.warning("device refused %s %s: %s", request["msg_type"],
                             request["msg_id"], e)
            await self._refuse(request, type(e).__name__, str(e))

    async def _shut_down(self, request: Message, session_id: str) -> None:
        """End the session's worker, then reply. Not in the loop that takes every session's
        requests: a worker that does not exit when its link closes (a cell runs, or its code
        took over its link) is waited for up to EXIT_GRACE (2 s), and each shutdown stalled
        every other session of the device that long. The broker sends the session nothing
        more (it is closed; the worksheet's next cell opens a new one); what else comes for
        it meanwhile ends with SessionClosed."""
        await self.overseer.close_session(session_id, "shutdown requested")
        await self._reply(request, session_id, mt.SHUTDOWN_REPLY,
                          {"status": "ok", "restart": False})

    async def _answer(self, session_id: str, request: Message) -> None:
        """An answer to a prompt goes to that session's worker if it waits for one; else it
        is dropped (it is no request to refuse with output: it has no cell run of its own).
        The value is never logged."""
        worker = self.overseer.workers.get(session_id)
        value = request["content"].get("value")
        if not isinstance(value, str) or worker is None or not await worker.prompt.answer(value):
            self.log.info("device: an answer for session %s came while it waited for none; "
                          "dropped", session_id)

    async def _taken_for_lost(self, content: dict[str, Any]) -> None:
        """The broker took this device for lost and ended a session's work itself: end its
        worker (:meth:`Overseer.abandon`) before any later request of the session comes, and
        forget the replies it gave (the broker drops those of requests it took back, and
        sends them again)."""
        session_id = content.get("session")
        worker = self.overseer.workers.get(session_id) if isinstance(session_id, str) else None
        if worker is None:
            return
        # Its end is one line of the overseer's (device/workerends.py), which names this.
        await self.overseer.abandon(worker.session_id,
                                    str(content.get("reason") or "device lost")[:200])
        # Once it has ended: until then it may still answer a request it was given.
        for msg_id in worker.given:  # taken back by the broker: it may send them again
            self.answered.pop(msg_id, None)

    def _live(self, session_id: str) -> bool:
        """Whether the session's worker runs here and the device is not draining."""
        worker = self.overseer.workers.get(session_id)
        return not self.drain.draining and worker is not None and not worker.done.is_set()

    def _session_of(self, request: Message) -> str:
        if request["msg_type"] not in REQUEST_TYPES:
            raise BadRequest(f"a device does not take {request['msg_type']!r} messages")
        facts = request["metadata"].get("cellbus")
        session_id = facts.get("session") if isinstance(facts, dict) else None
        if not isinstance(session_id, str) or not 0 < len(session_id) <= MAX_SESSION_ID:
            raise BadRequest("request has no metadata.cellbus.session")
        return session_id

    async def _reply(self, request: Message, session_id: str, msg_type: str,
                     content: dict[str, Any]) -> None:
        await self.send_up(stamp(self.session, request, msg_type, content,
                                 session=session_id, device=self.device_id))

    async def _refuse(self, request: Message, ename: str, evalue: str) -> None:
        facts = request["metadata"].get("cellbus")
        session_id = facts.get("session") if isinstance(facts, dict) else None
        session_id = session_id if isinstance(session_id, str) else ""
        for msg in failed(self.session, request, ename, evalue, session=session_id,
                          device=self.device_id):
            await self.send_up(msg)

    def _broker_alive(self) -> bool:
        """Whether the broker was heard lately: someone takes the output of running cells."""
        return time.monotonic() - self.broker_heard <= EXPIRY

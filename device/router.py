"""The device router: the device's one socket towards the broker, and request dispatch.

Shaped like the ZeroMQ Guide's Majordomo worker side: the device registers with its capacity,
sends heartbeats (device/brokerlink.py keeps the link), takes requests addressed to sessions
and hands each to the overseer, which routes it to that session's worker (starting one if
needed). Output travels back upstream on the same socket, unchanged but for the routing facts
in ``metadata["cellbus"]``.

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
from protocol.heartbeat import EXPIRY
from protocol.kernels import kernel_of
from protocol.requests import failed, stamp
from protocol.version import VERSION
from protocol.wire import Message, Session

from .brokerlink import BrokerLinked
from .draining import DRAIN_REPLY_TIMEOUT, DRAIN_TIMEOUT, Drain
from .launcher import LaunchError
from .metrics import DeviceMetrics
from .outbox import DEFAULT_CAPACITY, Outbox
from .overseer import AtCapacity, Overseer, OverseerConfig

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


class DeviceRouter(BrokerLinked):
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
        #: The broker's count of hand-outs before the last message of it handled here
        #: (``metadata.cellbus.handed``), reported so that the broker reconciles a report
        #: only with the hand-outs this device could see when it built it (broker/handed.py).
        self.heard: str | None = None
        self.watch_broker()
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

    async def _session_closed(self, session_id: str, reason: str) -> None:
        # (logged by the overseer, which knows the worker's end whole: device/overseer.py)
        if self.drain.left or self.up.closed:
            return  # stopping: the final hand-back tells the broker, not a message per session
        try:
            await self._control(mt.SESSION_CLOSED, {"session": session_id, "reason": reason})
        except zmq.ZMQError as e:  # the socket closed under it as the device stopped
            self.log.debug("device: could not report session %s closed: %s", session_id, e)

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

"""A stopping device's drain: no new work, running cells finish, the rest goes back.

On SIGTERM (:meth:`DeviceRouter.shutdown`) the device takes no new work, tells the broker so
(``device_drain``), lets running cells finish for up to ``--drain-timeout`` seconds, and
hands back every request it holds but has not started, each session's once its running cell
is over (so a session's cells still run in order), for the broker to place elsewhere. A cell
still running at the deadline ends with a ``DrainTimeout`` error. Last comes a final
``device_drain``, which the broker answers once everything before it is stored; only then
does the device close its socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import zmq

from protocol import msgtypes as mt
from protocol.heartbeat import HEARTBEAT_INTERVAL
from protocol.wire import Message, Session

from .overseer import Overseer
from .workers import EXIT_GRACE, Worker

log = logging.getLogger("cellbus.device")

#: Seconds a stopping device lets running cells finish (--drain-timeout).
DRAIN_TIMEOUT = 10.0
#: Seconds between looks at the running cells while draining.
DRAIN_POLL = 0.05
#: Seconds a stopping device waits for the broker to confirm its final hand-back, and for
#: the broker's receipt of the output still in its outbox.
DRAIN_REPLY_TIMEOUT = 3.0


class Drain:
    """The drain of one device: what it holds back, and its hand-backs to the broker.

    ``send_now`` writes frames towards the broker without waiting (False: no room), and
    ``broker_alive`` says whether the broker was heard lately."""

    def __init__(self, *, bus: Session, device_id: str, overseer: Overseer,
                 send_now: Callable[[list[bytes]], bool], broker_alive: Callable[[], bool],
                 timeout: float = DRAIN_TIMEOUT) -> None:
        self.bus, self.device_id, self.overseer = bus, device_id, overseer
        self.send_now, self.broker_alive, self.timeout = send_now, broker_alive, timeout
        #: Set on SIGTERM: no new work; requests held back per session, to hand back.
        self.draining = False
        self.returning: dict[str, list[Message]] = {}
        #: The final hand-back is sent: no more heartbeats.
        self.left = False
        self._replies: dict[str, asyncio.Future[None]] = {}
        self._broker_beat = -1e9  # when the broker's heartbeat was last heard (monotonic)

    def hold(self, session_id: str, request: Message) -> None:
        """Keep ``request`` (one that came while draining) to hand back."""
        self.returning.setdefault(session_id, []).append(request)

    def replied(self, msg_id: str) -> None:
        """The broker answered the hand-back ``msg_id``."""
        waiter = self._replies.get(msg_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def broker_beat(self) -> None:
        """A broker's heartbeat was heard."""
        self._broker_beat = time.monotonic()

    def running(self) -> dict[str, Worker]:
        """Workers running a request now, by session."""
        return {sid: w for sid, w in self.overseer.workers.items()
                if w.current is not None and not w.done.is_set()}

    def _hold_back_queues(self) -> None:
        """Move every request queued in a worker (not started) to :attr:`returning`."""
        for session_id, worker in self.overseer.workers.items():
            if worker.queue:
                self.returning.setdefault(session_id, []).extend(worker.queue)
                worker.queue.clear()

    async def drain(self) -> None:
        """Take no new work; let running cells finish until the drain timeout, handing back
        each session's requests once nothing of it runs; stop what still runs then."""
        self.draining = True
        self._hold_back_queues()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        running, back = len(self.running()), sum(map(len, self.returning.values()))
        log.info("device %s draining: %d cell%s running (up to %g s to finish), %d "
                 "request%s to hand back", self.device_id, running, "" if running == 1 else "s",
                 self.timeout, back, "" if back == 1 else "s")
        await self.hand_back()
        if self.running() and not self.broker_alive():
            log.warning("device %s: no broker to take the output of the running cells; "
                        "not waiting for them", self.device_id)
        while self.running() and loop.time() < deadline and self.broker_alive():
            await asyncio.sleep(DRAIN_POLL)
            self._hold_back_queues()  # a request that reached a worker just now
            await self.hand_back()
        late = list(self.running().values())
        for worker in late:  # each one's end is one line of the overseer's, naming this
            worker.stop_for_limit("DrainTimeout", (
                f"the device {self.device_id} was stopped, and this cell did not finish "
                f"within its {self.timeout:g} s drain timeout (--drain-timeout); run "
                "it again"))
        if late:
            await asyncio.wait([asyncio.ensure_future(w.done.wait()) for w in late],
                               timeout=EXIT_GRACE + 1)
        log.info("device %s drained", self.device_id)

    async def hand_back(self, *, final: bool = False) -> None:
        """Tell the broker which held-back requests to place elsewhere: those of sessions
        with nothing running (all of them if ``final``, which waits for the broker's reply)."""
        running = self.running()
        back = [sid for sid in self.returning if final or sid not in running]
        returned = [r["msg_id"] for sid in back for r in self.returning.pop(sid)]
        if not returned and not final:
            return
        content = {"device": self.device_id, "returned": returned,
                   "running": [w.current["msg_id"] for w in running.values()
                               if w.current is not None], "final": final}
        msg = self.bus.msg(mt.DEVICE_DRAIN, content,
                           metadata={"cellbus": {"device": self.device_id}})
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if final:
            self._replies[msg["msg_id"]] = waiter
            self.left = True
        try:
            if not self.send_now(self.bus.serialize(msg)):
                raise zmq.Again()
        except zmq.ZMQError as e:
            if returned:
                log.warning("device %s could not hand back %d requests: %s (the broker "
                            "places them again once it takes the device for lost)",
                            self.device_id, len(returned), e)
            else:  # nothing to hand back: only the word that it leaves was lost
                log.warning("device %s could not tell the broker it leaves (%s); a broker "
                            "takes it for lost", self.device_id, e)
            return
        if final:
            await self._await_reply(waiter)

    async def _await_reply(self, waiter: asyncio.Future[None]) -> None:
        """Wait for the broker's answer to the final hand-back while a broker beats (a test
        client standing in for the broker never does; a stopped broker stops), at most
        DRAIN_REPLY_TIMEOUT seconds."""
        deadline = time.monotonic() + DRAIN_REPLY_TIMEOUT
        while time.monotonic() - self._broker_beat <= 1.5 * HEARTBEAT_INTERVAL:
            if time.monotonic() >= deadline:
                break
            try:
                await asyncio.wait_for(asyncio.shield(waiter), DRAIN_POLL * 2)
            except TimeoutError:
                continue
            log.info("device %s: the broker has everything; leaving", self.device_id)
            return
        log.log(logging.WARNING if self._broker_beat > 0 else logging.INFO,
                "device %s: no answer from a broker; leaving anyway (a broker takes the "
                "device for lost and places what it held again)", self.device_id)

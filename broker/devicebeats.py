"""The broker's heartbeats to its devices (Paranoid Pirate, broker side): a round every
:data:`~protocol.heartbeat.HEARTBEAT_INTERVAL` to every known device, each saying how long its
device went unheard (device/relink.py), and the devices silent past the expiry handed to
:meth:`broker.devices.DeviceWatch.lost`, in order, by a task of their own. DeviceWatch is this
class; what it does when devices come, go and come back is its own (broker/devices.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from protocol import msgtypes as mt
from protocol.heartbeat import HEARTBEAT_INTERVAL
from protocol.wire import Message, Session

from .dispatch import Dispatch
from .metrics import BrokerMetrics
from .placement import DeviceTable


class DeviceBeats:
    """The heartbeat loop of :class:`broker.devices.DeviceWatch`."""

    wire: Session
    dispatch: Dispatch
    devices: DeviceTable
    metrics: BrokerMetrics
    log: logging.Logger

    async def lost(self, device: str, why: str = "") -> None:
        raise NotImplementedError

    async def end_orphans(self) -> None:
        raise NotImplementedError

    async def heartbeats(self) -> None:
        """Heartbeat every known device; declare lost the ones that went silent.

        What that costs in the store (a lost device's cells, the orphans after start-up) is
        done in order by a task of its own: awaited here, a store that did not answer held
        every device's heartbeat as long, and each device, hearing nothing, took its broker
        for silent ("... is its --key-file the same ...?") and connected again and again."""
        chores: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()

        async def do_chores() -> None:
            while True:
                await (await chores.get())()

        worker = asyncio.create_task(do_chores(), name="broker.heartbeats.store")
        try:
            await self._beat(chores, worker)
        finally:
            worker.cancel()

    def _heartbeat(self, unheard: float | None = None) -> Message:
        """A heartbeat, with the hand-outs' token (broker/handed.py) and, but from a broker
        that did not itself run, how long its device was not heard: one whose messages stop
        on the way while these come makes its link anew (device/relink.py)."""
        facts: dict[str, Any] = {"handed": self.dispatch.handed.token()}
        if unheard is not None:
            facts["unheard"] = round(unheard, 2)
        return self.wire.msg(mt.BROKER_HEARTBEAT, {}, metadata={"cellbus": facts})

    def beat(self, routing_id: bytes) -> None:
        """Heartbeat one device now: one heard for the first time, or again after it was
        taken for lost (a device across this broker's restart speaks first), takes the
        broker for back only once it hears it, and the next round may be a second away: a
        device whose own tick came first dropped its new link as silent."""
        self.dispatch.post(routing_id, self._heartbeat())

    async def _beat(self, chores: asyncio.Queue[Callable[[], Awaitable[None]]],
                    worker: asyncio.Task[None]) -> None:
        startup_grace = self.devices.startup_grace
        checked_orphans = False
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.devices.started = time.monotonic()  # devices are heard from now on
        while True:
            if worker.done():
                worker.result()  # its crash is this loop's (the node stops, saying so)
            before = loop.time()
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            stopped = (late := loop.time() - before - HEARTBEAT_INTERVAL) > HEARTBEAT_INTERVAL
            if stopped:
                self.log.warning("broker: did not run for %.1f s (stopped, or its loop held); "
                                 "that silence is not held against the devices", late)
                self.devices.stalled(late)
            now = self.devices.now()
            for state in list(self.devices.devices.values()):
                beat = self._heartbeat(None if stopped else now - state.last_heard)
                self.dispatch.post(state.routing_id, beat)  # if not connected: expiry decides
            self.metrics.heartbeat_round()
            for device in self.devices.expired():
                chores.put_nowait(functools.partial(self.lost, device))
            if not checked_orphans and loop.time() - started > startup_grace:
                checked_orphans = True
                chores.put_nowait(self.end_orphans)


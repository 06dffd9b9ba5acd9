"""The device's link to the broker, its side of the ZeroMQ Guide's Paranoid Pirate:
heartbeats both ways, a broker silent past the expiry noticed (output kept in the outbox
meanwhile), and the link made anew when the broker is silent while it is up, when the broker
says it does not hear this device (device/relink.py), or when it was lost. The device router
(device/router.py) is this node; its requests and output are its own.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from protocol import msgtypes as mt
from protocol.heartbeat import EXPIRY, HEARTBEAT_INTERVAL, RECONNECT_AFTER, RECONNECT_EVERY
from protocol.node import Node
from protocol.sockets import BusSocket

from .draining import Drain
from .outbox import Outbox
from .relink import Unheard
from .silence import silent_link


class BrokerLinked(Node):
    """A device node's heartbeats and link keeping (the router's base)."""

    device_id: str
    endpoints: tuple[str | None, str | None]
    up: BusSocket
    outbox: Outbox
    drain: Drain

    def watch_broker(self) -> None:
        """The link's state, from the start: the broker taken as just heard."""
        self.broker_heard = time.monotonic()
        self.broker_lost = False
        #: When the link is next made anew while the broker is silent.
        self.reconnect_at = 0.0
        self.unheard = Unheard(self.device_id)  # made anew while the broker does not hear it

    def status(self) -> dict[str, Any]:
        """What register and heartbeat messages report (the router's)."""
        raise NotImplementedError

    async def _control(self, msg_type: str, content: dict[str, Any], *, block: bool = True) -> bool:
        msg = self.session.msg(msg_type, content, metadata={"cellbus": {"device": self.device_id}})
        frames = self.session.serialize(msg)
        if block:
            await self.up.send_frames(frames)
        elif not self.up.send_now(frames):
            self.log.debug("device: no broker to take %s yet", msg_type)
            return False
        return True

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
        1 s, then every 2 s, within the broker's expiry (:data:`RECONNECT_EVERY`): a
        connection the broker's end lost hold of without a word is taken again. (One whose
        routing id, the device's name, an earlier process of this device still holds, frozen
        or on a host gone away, is handed over by the broker's ROUTER: protocol/node.py.)
        Output waits in the outbox and is sent again; nothing else the broker
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


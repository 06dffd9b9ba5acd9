"""A revoked key loses its open connections too, not only its next one.

The ZAP handler (:mod:`protocol.curve`) refuses a revoked key's next handshake; a connection
already open would stay. So every :data:`CHECK_INTERVAL` the broker compares the key of each
peer it heard from on its ROUTER ports (the ZAP User-Id, noted per routing id by
:class:`~protocol.sockets.BusSocket`) with the keys the folders allow now. For a peer whose
key is gone it:

- refuses every message of that key from then on (the device port's :class:`Senders`, and
  :meth:`Revocations.refuses` on the gateway port), until the broker restarts;
- sends it ``bus_revoked``, on which a cellbus node disconnects and stops
  (:meth:`protocol.node.Node.recv`);
- for a device: forgets it at once, as if it were lost: its running cells end with
  ``DeviceLost`` and its queued work goes to the other devices;
- for a gateway: cuts every connection of the feed (PUB), whose peers have no identity to
  pick one by; the allowed gateways reconnect at once and catch up from the store (seq
  beacons), the revoked one's handshake is refused.

ZeroMQ cannot close one peer of a bound socket; rebinding the whole socket to force it left
an allowed device unable to reconnect now and then (see git log), so ROUTER connections are
not cut but shut out, and feed connections are cut one by one (``shutdown`` on the
descriptors the socket monitor reported), not by a rebind.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable

import zmq
from zmq.utils.monitor import parse_monitor_message

from protocol import msgtypes as mt
from protocol.curve import ServerKeys
from protocol.heartbeat import device_name
from protocol.sockets import BusSocket
from protocol.wire import Message, Session

from .senders import Senders

#: Seconds between two looks at the key folders.
CHECK_INTERVAL = 0.5
_FEED_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED


class Revocations:
    """Watches the broker's key folders and shuts revoked keys out (module docstring)."""

    def __init__(self, *, keys: ServerKeys, wire: Session, device_keys: dict[bytes, str],
                 gateways: BusSocket, pub: BusSocket, monitor_socket: Callable[[str], BusSocket],
                 post_device: Callable[[bytes, Message], None], senders: Senders,
                 forget_device: Callable[[str, str], Awaitable[None]],
                 rejected: collections.Counter[str], log: logging.Logger) -> None:
        """``device_keys``: the device port's peer keys by routing id (filled by its
        socket); ``monitor_socket(endpoint)``: a PAIR socket connected to ``endpoint``;
        ``post_device``: the one way to send to a device (:meth:`Dispatch.post`);
        ``forget_device(device, why)``: take a device for lost now."""
        self.keys, self.wire, self.device_keys, self.gateways = keys, wire, device_keys, gateways
        self.post_device, self.senders, self.forget_device = post_device, senders, forget_device
        self.rejected, self.log = rejected, log
        #: Gateway keys (z85) revoked while this broker runs.
        self.gateway_keys: set[str] = set()
        #: (routing id, revoked key) of the peers told and shut out, once each: a node that
        #: goes on talking is refused without a line per message.
        self.told: set[tuple[bytes, str]] = set()
        gateways.note_peer_keys()
        monitor = f"inproc://cellbus-feed-{uuid.uuid4().hex}"
        pub.monitor(monitor, _FEED_EVENTS)
        self.feed_events = monitor_socket(monitor)
        #: Descriptors of the feed's open TCP connections.
        self.feed_fds: set[int] = set()

    def refuses(self, idents: list[bytes]) -> bool:
        """Whether a message on the gateway port comes from a revoked key (counted)."""
        peer_keys = self.gateways.peer_keys
        if not idents or peer_keys is None or peer_keys.get(idents[0]) not in self.gateway_keys:
            return False
        self.rejected["revoked"] += 1
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            await self.check()

    async def check(self) -> None:
        """Shut out every peer whose key is no longer allowed (see the module docstring)."""
        self._read_feed_events()
        cut_feed = False
        assert self.gateways.peer_keys is not None
        for role, peers in (("device", self.device_keys), ("gateway", self.gateways.peer_keys)):
            allowed = {key.decode() for key in self.keys.roles.keys(role)}
            for routing_id, key in list(peers.items()):
                if key in allowed:
                    continue
                del peers[routing_id]
                if (routing_id, key) in self.told:
                    continue
                self.told.add((routing_id, key))
                if role == "device":
                    self._tell(role, routing_id, key)
                    self.senders.revoke(key)
                    await self.forget_device(device_name(routing_id),
                                             "its key was revoked")
                else:
                    self.gateway_keys.add(key)
                    cut_feed = self._tell(role, routing_id, key) or cut_feed
        if cut_feed:
            self._cut_feed()

    def _tell(self, role: str, routing_id: bytes, key: str) -> bool:
        """Tell the peer its key is revoked; False if it is a gateway's connection that is
        gone (a gateway that reloaded a rotated certificate connects anew, under another
        routing id: its old one is no revoked peer, and no reason to cut the feed)."""
        notice = self.wire.msg(mt.BUS_REVOKED, {"key": key})
        if role == "device":
            self.post_device(routing_id, notice)
        else:
            try:
                self.gateways.send_now(self.wire.serialize(notice, [routing_id]))
            except zmq.ZMQError:
                self.log.debug("broker: the key %s… was revoked; the gateway connection %r "
                               "that used it is gone", key[:12], routing_id)
                return False
        self.log.warning("broker: the key %s… of %r was revoked: its messages are refused "
                         "from now on, and it is told to disconnect", key[:12],
                         device_name(routing_id))
        return True

    def _read_feed_events(self) -> None:
        while (frames := self.feed_events.recv_now()) is not None:
            event = parse_monitor_message(frames)
            if event["event"] == zmq.EVENT_ACCEPTED:
                self.feed_fds.add(int(event["value"]))
            else:
                self.feed_fds.discard(int(event["value"]))

    def _cut_feed(self) -> None:
        """Shut down every open TCP connection of the feed: libzmq sees each end and drops
        it; subscribers reconnect through the ZAP handler, which lets in allowed keys only."""
        self._read_feed_events()  # a descriptor closed just now is not cut by mistake
        cut = 0
        for fd in sorted(self.feed_fds):
            try:
                conn = socket.socket(fileno=fd)
            except OSError:
                continue
            try:
                conn.shutdown(socket.SHUT_RDWR)
                cut += 1
            except OSError:
                pass  # closed meanwhile
            finally:
                conn.detach()  # the descriptor stays libzmq's
        self.feed_fds.clear()
        self.log.warning("broker: cut %d feed connections after a gateway key was revoked; "
                         "allowed gateways reconnect and catch up", cut)

"""The broker's side of a gateway connection whose messages stop on the way to it.

One byte changed on the way from a gateway to the broker, after their CURVE handshake
passed, leaves the broker's end of that connection open, reading nothing, until ZeroMQ's
heartbeat ends it (6 s); the broker's monitor says only that a message on its gateway port
could not be decrypted, not whose. The gateway heard nothing of it: the request that was
changed, and every one after it on that connection, waited out its 10 s and was answered
503, though none had reached the broker (a retry was safe, but slow and wordless).

So on such a failure (:meth:`GatewayLinks.changed`, the gateway port's link watch) the
broker says so on its output feed, which every gateway reads on a connection of its own: not
on the failed connection, where libzmq 4.3.5 aborts the broker (``Assertion failed:
!_io_error (src/stream_engine_base.cpp:310)``) once that connection has read again. Each
gateway asks on its own connections (``gateway_probe``) and makes anew one the broker does
not answer within a second (gateway/bus.py); its requests waiting there are then asked again
(an execute under its msg_id) or answered 503 at once.
"""

from __future__ import annotations

import logging

import zmq

from protocol import msgtypes as mt
from protocol.node import Node
from protocol.sockets import BusSocket
from protocol.wire import Message, Session

from .gateways import Gateways

class GatewayLinks:
    """Reads the gateways' heartbeats and probes; asks every gateway to check its
    connections when a message on the gateway port could not be decrypted."""

    def __init__(self, *, node: Node, sock: BusSocket, pub: BusSocket, wire: Session,
                 gateways: Gateways, log: logging.Logger) -> None:
        self.sock, self.pub, self.wire, self.gateways, self.log = sock, pub, wire, gateways, log
        for link in node.links:  # the gateway port's watch (the ROUTER's; a PUB has none)
            if link.server and link.role == "gateway":
                link.reconnect = self.changed

    def read(self, idents: list[bytes], msg: Message) -> bool:
        """True if ``msg`` (from the connection ``idents`` names) is done with here: a
        heartbeat, listed; a probe, answered at once."""
        if msg["msg_type"] == mt.GATEWAY_HEARTBEAT:
            self.gateways.heard(msg["content"])
            return True
        if msg["msg_type"] == mt.GATEWAY_PROBE:
            reply = self.wire.msg(mt.GATEWAY_PROBE_REPLY, {}, parent=msg)
            self._send(self.sock, reply, idents)
            return True
        return False

    def changed(self) -> None:
        """A message on the gateway port could not be decrypted: every gateway is asked, on
        the output feed, to check its connections."""
        if self._send(self.pub, self.wire.msg(mt.GATEWAY_CHECK, {}), [b""]):
            self.log.info("broker: the gateways are asked to check that this broker reads "
                          "their connections")

    def _send(self, sock: BusSocket, msg: Message, idents: list[bytes]) -> bool:
        """Send ``msg`` now, or not at all (a connection gone meanwhile, a full feed)."""
        try:
            return sock.send_now(self.wire.serialize(msg, idents))
        except zmq.ZMQError:
            return False

"""The heartbeat between the broker and its devices, which both ends must agree on.

The ZeroMQ Guide's Paranoid Pirate: each side sends a heartbeat every
:data:`HEARTBEAT_INTERVAL` seconds and takes the other for lost once it has heard nothing
for :data:`EXPIRY` (``HEARTBEAT_INTERVAL * HEARTBEAT_LIVENESS``) seconds; any message
counts as a sign of life. The broker's expiry decides when a device's work is placed
elsewhere, the device's when it registers again, so the two sides use the same numbers.
"""

from __future__ import annotations

#: Seconds between heartbeats, either way.
HEARTBEAT_INTERVAL = 1.0
#: Heartbeats a peer may miss before it is taken for lost.
HEARTBEAT_LIVENESS = 3
#: Seconds of silence after which a peer is taken for lost.
EXPIRY = HEARTBEAT_INTERVAL * HEARTBEAT_LIVENESS
#: A worker whose link is up while its broker stays silent connects again this many seconds
#: after it took the broker for lost, then every :data:`RECONNECT_EVERY` seconds (Paranoid
#: Pirate's reconnect). That interval is under the broker's :data:`EXPIRY`: a broker that was
#: frozen (SIGSTOP) while the device connected again may, as it goes on, drop the device's
#: newest connection as a duplicate of one whose end it has not read yet, and it counts its
#: expiry from when it runs again; the device's next attempt must come before that expiry,
#: or the broker takes it for lost and ends its cells (tests/test_frozen_broker_reconnect.py;
#: with waits doubling up to 32 s it did).
RECONNECT_AFTER = HEARTBEAT_INTERVAL
#: Seconds between a gateway's heartbeats to the broker (broker/gateways.py), which only
#: list the gateways in ``cellbus status``: nothing is placed or ended by them.
GATEWAY_INTERVAL = 2.0
RECONNECT_EVERY = EXPIRY - HEARTBEAT_INTERVAL
#: A device the broker says it has not heard for this many seconds, while the broker's own
#: heartbeats reach it, makes its link anew under its next routing id (device/relink.py):
#: its messages stopped on the way while the broker's still come (a byte changed on the way
#: up, which the broker's CURVE cannot decrypt), and the broker takes it for lost at
#: :data:`EXPIRY`.
UNHEARD = 1.5 * HEARTBEAT_INTERVAL
#: Between a device's name and its link's number in the routing id of a link made anew
#: (:func:`routing_id`): a device name holds no NUL (it comes from the command line).
LINK_MARK = b"\x00"


def routing_id(device: str, link: int) -> bytes:
    """The routing id of ``device``'s ``link``-th link made anew (0: its name alone).

    A broker's ROUTER keeps the routing id of a connection it can no longer read (ZeroMQ
    keeps a connection it could not decrypt a message of open, reading nothing, until its
    heartbeat ends it, 6 s, past :data:`EXPIRY`), and drops a new connection under the same
    id meanwhile; the broker cannot tell which of its connections failed, so the device
    comes back under another id, which names the same device (:func:`device_name`)."""
    name = device.encode()
    return name if link == 0 else name + LINK_MARK + str(link).encode()


def device_name(routing_id: bytes) -> str:
    """The device a routing id on the broker's device port names (see :func:`routing_id`)."""
    return routing_id.split(LINK_MARK, 1)[0].decode(errors="replace")

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
#: A worker whose link is up while its broker stays silent connects again after these
#: seconds, doubled each time up to the second (Paranoid Pirate's reconnect interval).
RECONNECT_INTERVAL = (1.0, 32.0)

"""A device whose messages stop reaching the broker while the broker's still reach it.

One byte changed on the way from a device to the broker, after their CURVE handshake
passed, leaves the broker's end of that connection open, reading nothing, until ZeroMQ's
heartbeat ends it (6 s): the broker's monitor says only that a handshake on its device port
failed, not which connection, and the broker's ROUTER drops a new connection under the
routing id the old one holds. The device, which still hears the broker's heartbeats (so it
never took the broker for silent), was taken for lost at the expiry (3 s) and the cells it
ran ended DeviceLost.

Each broker heartbeat says how long the broker has not heard the device (``unheard``); a
device told :data:`~protocol.heartbeat.UNHEARD` seconds or more, while it ran and its link
was up, makes its link anew under its next routing id (:func:`protocol.heartbeat.routing_id`,
the same device name to the broker), well within the expiry. Its outbox sends what was not
stored again, and its next report counts the new connection, so the broker reconciles what it
handed out meanwhile (broker/placement.relinked).
"""

from __future__ import annotations

import collections
import math
import time
from typing import Any

from protocol.heartbeat import HEARTBEAT_INTERVAL, RECONNECT_AFTER, UNHEARD, routing_id

#: Seconds a heartbeat takes to reach the broker and its answer to come back, at most, as
#: taken here: one sent less than this before the broker's heartbeat came, or less than this
#: after the time the broker last heard this device, may not have been heard.
SLACK = HEARTBEAT_INTERVAL / 4


class Unheard:
    """When a device's link is made anew because the broker does not hear it."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        #: Links made anew so far for this reason: the routing id's number.
        self.links = 0
        #: When this device's last heartbeats went out (monotonic), oldest first.
        self.beats: collections.deque[float] = collections.deque(maxlen=8)
        self.relinked_at = -math.inf

    def words(self) -> str:
        """What the log says of a link made anew so."""
        return (f"the broker has not heard this device for {UNHEARD:g} s or more while its "
                "heartbeats come: what this device sends is lost on the way (a byte changed,"
                " which the broker could not decrypt, or a link that carries one way only); "
                f"connecting again as link {self.links}")

    @property
    def routing_id(self) -> bytes:
        return routing_id(self.device_id, self.links)

    def moved(self) -> bytes:
        """The routing id of a link made anew because the last one was lost: the broker may
        still hold that connection (a NAT that gave this host a new source port, or a path
        that went silent, leaves the broker's end open until its ZMTP heartbeat ends it, 6 s,
        past the expiry), and its ROUTER would not hear a new one under the same id."""
        self.relinked_at, self.links = time.monotonic(), self.links + 1
        return self.routing_id

    def sent(self) -> None:
        """A heartbeat of this device went out."""
        self.beats.append(time.monotonic())

    def says(self, facts: Any, link_up_for: float | None) -> bool:
        """Whether the broker's heartbeat ``facts`` (its ``metadata.cellbus``) say that it
        has not heard this device for :data:`UNHEARD` seconds or more (``unheard``) though
        this device sent a heartbeat meanwhile, long enough ago to have been heard
        (:data:`SLACK` either side), and its link is up (``link_up_for`` seconds; None: not
        up): then the routing id moves on and True, at most once per :data:`UNHEARD`
        seconds. A device that was itself stopped (SIGSTOP, a paused VM) sent nothing
        meanwhile: the heartbeats that waited for it say it was not heard, rightly."""
        unheard = facts.get("unheard") if isinstance(facts, dict) else None
        if isinstance(unheard, bool) or not isinstance(unheard, (int, float)) or \
                not UNHEARD <= unheard < math.inf:
            return False
        now = time.monotonic()
        if not any(now - unheard + SLACK <= beat <= now - SLACK for beat in self.beats) or \
                now - self.relinked_at < UNHEARD or link_up_for is None or \
                link_up_for < RECONNECT_AFTER:
            return False
        self.relinked_at, self.links = now, self.links + 1
        return True

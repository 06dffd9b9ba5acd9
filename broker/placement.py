"""Which device runs a session: the live-device table and the placement rule.

Devices announce themselves with ``device_register`` and then send ``device_heartbeat`` every
``HEARTBEAT_INTERVAL`` seconds with their capacity, load and live sessions. As in the ZeroMQ
Guide's Paranoid Pirate, a device is alive while it was heard from within
``HEARTBEAT_INTERVAL * HEARTBEAT_LIVENESS`` seconds; any message from it counts.

The rule (seed 000 step 5's "very fancy algorithm"):

1. **Affinity.** A session already placed on a live device stays there: its worker, and the
   variables in it, live on that device.
2. **Most free capacity.** Otherwise the live device with the most free places wins, where
   free = capacity - reported load - sessions placed on it since its last heartbeat (so a burst
   of new sessions spreads out instead of piling onto the device that looked emptiest).
   Ties go to the device heard from most recently, then by name, so the choice is stable.
3. **No device.** With no live device the request stays unplaced (``needs_work``) and is
   placed when a device registers: the store is the buffer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

#: Seconds between a device's heartbeats (must match device.router.HEARTBEAT_INTERVAL).
HEARTBEAT_INTERVAL = 1.0
#: Heartbeats a device may miss before it is taken for lost.
HEARTBEAT_LIVENESS = 3


@dataclass
class DeviceState:
    device: str
    routing_id: bytes
    capacity: int = 0
    load: int = 0
    sessions: set[str] = field(default_factory=set)
    placed_since_report: int = 0
    last_heard: float = field(default_factory=time.monotonic)
    lost: bool = False

    @property
    def free(self) -> int:
        return self.capacity - self.load - self.placed_since_report


class DeviceTable:
    """Live devices, their reported capacity and load, and the placement rule above."""

    def __init__(self, *, interval: float = HEARTBEAT_INTERVAL,
                 liveness: int = HEARTBEAT_LIVENESS) -> None:
        self.expiry = interval * liveness
        self.devices: dict[str, DeviceState] = {}

    def heard(self, device: str, routing_id: bytes, report: dict[str, Any] | None = None) -> bool:
        """Note a message from ``device``; returns True if it is new or was taken for lost."""
        state = self.devices.get(device)
        fresh = state is None or state.lost or not self.alive(device)
        if state is None:
            state = self.devices[device] = DeviceState(device, routing_id)
        state.routing_id = routing_id
        state.last_heard = time.monotonic()
        state.lost = False
        if report is not None:
            state.capacity = _int(report.get("capacity"), state.capacity)
            state.load = _int(report.get("load"), state.load)
            sessions = report.get("sessions")
            if isinstance(sessions, list):
                state.sessions = {s for s in sessions if isinstance(s, str)}
            state.placed_since_report = 0
        return fresh

    def expired(self) -> list[str]:
        """Devices that just went silent for too long; each is reported once, then marked
        lost until it is heard again."""
        now = time.monotonic()
        gone = [d for d in self.devices.values() if not d.lost and now - d.last_heard > self.expiry]
        for state in gone:
            state.lost = True
        return [d.device for d in gone]

    def alive(self, device: str | None) -> bool:
        state = self.devices.get(device) if device else None
        return state is not None and time.monotonic() - state.last_heard <= self.expiry

    def live(self) -> list[DeviceState]:
        return [d for d in self.devices.values() if self.alive(d.device)]

    def place(self, current: str | None) -> str | None:
        """The device for a session now on ``current`` (None if unplaced); None if no device."""
        if current is not None and self.alive(current):
            return current
        candidates = self.live()
        if not candidates:
            return None
        best = max(candidates, key=lambda d: (d.free, d.last_heard, d.device))
        best.placed_since_report += 1
        return best.device

    def routing_id(self, device: str) -> bytes | None:
        state = self.devices.get(device)
        return state.routing_id if state else None


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default

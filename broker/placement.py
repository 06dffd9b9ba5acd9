"""Which device runs a session: the live-device table, free capacity and the placement rule.

Devices announce themselves with ``device_register`` and then send ``device_heartbeat`` every
``HEARTBEAT_INTERVAL`` seconds with their capacity, load (sessions alive *or starting*) and
live sessions. As in the ZeroMQ Guide's Paranoid Pirate, a device is alive while it was heard
from within ``HEARTBEAT_INTERVAL * HEARTBEAT_LIVENESS`` seconds; any message from it counts.

Free capacity. A device's reported load lags: sessions the broker placed on it since may not
be in it yet. The broker remembers each session it placed on a device until a report can
count it: one that lists the session, or any report after the device said something about the
session (it started it, or refused it), or ``PLACING_TTL`` seconds after placement (its request
was lost on the way). So ``free = capacity - max(load, live sessions + placed ones not yet
reported)``: a crowd of new sessions is counted the moment each is placed, while a session that
was placed but never started stops holding a place as soon as the device has spoken.

The rule (seed 000 step 5's "very fancy algorithm"):

1. **Affinity.** A session whose worker lives (or is starting) on a live device stays there:
   its variables live in that worker. A broker just restarted waits for the device the store
   names for a session until that device reports or the start-up grace passes
   (:meth:`DeviceTable.awaited`).
2. **Most free capacity.** Otherwise the session needs a new worker, and so a free place: its
   previous device if that has one, else the live device with the most free places (so a burst
   spreads out). Ties go to the device heard from most recently, then by name.
3. **No room.** If no live device has a free place the session is not placed (the broker
   answers 503 for a new request, or keeps a queued one waiting until a place frees).
4. **No device.** With no live device the request stays unplaced (``needs_work``) and is
   placed when a device registers: the store is the buffer.

**Kernels.** Rules 2-4 count only devices that offer the session's kernel (their register
and heartbeat list ``kernels``; one that lists none offers the built-in ``python``): a session
of a kernel no live device offers waits, as with no device at all.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from protocol.heartbeat import HEARTBEAT_INTERVAL, HEARTBEAT_LIVENESS
from protocol.kernels import DEFAULT_KERNEL, offered

#: Seconds a session placed on a device counts against its capacity while the device has not
#: mentioned it (its request lost on the way, say); normally a report counts it within 1 s.
PLACING_TTL = 30.0
#: A batch stored in longer than this many seconds holds the devices' expiry back by as long
#: (:meth:`DeviceTable.reading`); shorter ones are the broker's ordinary pace.
UNREAD_COUNTED = 0.1


@dataclass
class DeviceState:
    device: str
    routing_id: bytes
    capacity: int = 0
    load: int = 0
    #: Sessions with a worker on the device, as last reported (less those closed since).
    sessions: set[str] = field(default_factory=set)
    #: Sessions placed here that no report has counted yet -> when (monotonic).
    placing: dict[str, float] = field(default_factory=dict)
    #: Sessions of ``placing`` the device has sent something about since its last report.
    spoken: set[str] = field(default_factory=set)
    last_heard: float = field(default_factory=time.monotonic)
    lost: bool = False
    #: Connections of its link the device had made at its last report.
    links: int = 0
    #: The device is stopping (it said so in a device_drain or its heartbeats): it takes no
    #: new work, and its sessions' next requests go elsewhere.
    draining: bool = False
    #: The device's own words on its session sandbox (which protections are on or off).
    sandbox: str = ""
    #: The cellbus version the device said it runs ("" if it said none: older than 0.1.0).
    version: str = ""
    #: Records the device's workers sent that it rejected (forged or malformed), in all.
    rejected: int = 0
    #: The most a request may ask for on this device (protocol.asked; 0: no maximum).
    limits: dict[str, float] = field(default_factory=dict)
    #: The kernels it offers: {name, display_name, language} each (protocol.kernels).
    kernels: list[dict[str, str]] = field(default_factory=lambda: offered({}))
    #: How long its workers may sit idle (its --idle-timeout, s; 0: not reported).
    idle_timeout: float = 0.0
    #: Which process of the device reports (a new one each start; "" if it said none): a
    #: register with another one is the device restarted, not a repeat.
    boot: str = ""

    @property
    def occupied(self) -> int:
        """Places taken: the reported load (which counts sessions still starting), or more if
        sessions placed here since are not in it yet."""
        unseen = sum(1 for s in self.placing if s not in self.sessions)
        return max(self.load, len(self.sessions) + unseen)

    @property
    def free(self) -> int:
        return self.capacity - self.occupied

    def holds(self, session: str) -> bool:
        """True if the session's worker is on this device, or placed here and starting."""
        return session in self.sessions or session in self.placing

    def report(self, report: dict[str, Any]) -> None:
        """Take a heartbeat's capacity, load and sessions; forget placements it accounts for."""
        self.capacity = _int(report.get("capacity"), self.capacity)
        if isinstance(report.get("sandbox"), str):
            self.sandbox = report["sandbox"][:1000]
        if isinstance(report.get("version"), str):
            self.version = report["version"][:40]
        if isinstance(report.get("boot"), str):
            self.boot = report["boot"][:64]
        self.load = _int(report.get("load"), self.load)
        self.rejected = _int(report.get("rejected"), self.rejected)
        self.draining = report.get("draining") is True
        if isinstance(limits := report.get("limits"), dict):
            self.limits = {k: float(v) for k, v in limits.items() if isinstance(k, str)
                           and isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.kernels = offered(report)
        if isinstance(idle := report.get("idle_timeout"), (int, float)) and idle >= 0:
            self.idle_timeout = float(idle)
        sessions = report.get("sessions")
        if isinstance(sessions, list):
            self.sessions = {s for s in sessions if isinstance(s, str)}
        now = time.monotonic()
        for session, when in list(self.placing.items()):
            if session in self.sessions or session in self.spoken or now - when > PLACING_TTL:
                del self.placing[session]
        self.spoken.clear()


class DeviceTable:
    """Live devices, their reported capacity and load, and the placement rule above."""

    def __init__(self, *, interval: float = HEARTBEAT_INTERVAL,
                 liveness: int = HEARTBEAT_LIVENESS) -> None:
        self.expiry = interval * liveness
        self.devices: dict[str, DeviceState] = {}
        #: Since when the broker stores a batch of its devices' messages, reading none of
        #: theirs meanwhile (:meth:`storing`); None while it reads them.
        self.unread_since: float | None = None
        #: When this broker process began to hear devices (:meth:`awaited`; set again when
        #: it does, after its store opened).
        self.started = time.monotonic()

    @property
    def startup_grace(self) -> float:
        """Seconds after start within which a device a previous broker process placed
        sessions on is waited for: after them the cells it ran end (broker/devices.py)."""
        return 2 * self.expiry

    def heard(self, device: str, routing_id: bytes, report: dict[str, Any] | None = None) -> bool:
        """Note a message from ``device``; returns True if it is new or was taken for lost,
        or if the report is of another process of it (it restarted: a new ``boot``)."""
        state = self.devices.get(device)
        fresh = state is None or state.lost or not self.alive(device) or (
            report is not None and isinstance(report.get("boot"), str)
            and report["boot"][:64] != state.boot)
        if state is None:
            state = self.devices[device] = DeviceState(device, routing_id)
        state.routing_id = routing_id
        state.last_heard = time.monotonic()
        state.lost = False
        if report is not None:
            state.report(report)
        return fresh

    def relinked(self, device: str, report: dict[str, Any]) -> bool:
        """Whether ``device``'s link to this broker was made again since its last report
        (``links``: the connections it made): a connection dropped and made again within
        the expiry loses what was in flight on it, a hand-out among it, which only a
        reconciliation with the device's report finds."""
        state, links = self.devices.get(device), report.get("links")
        if state is None or not isinstance(links, int):
            return False
        before, state.links = state.links, links
        return before != 0 and links != before

    def spoke(self, device: str, session: str) -> None:
        """``device`` sent something about ``session``: its next report accounts for it."""
        state = self.devices.get(device)
        if state is not None and session in state.placing:
            state.spoken.add(session)

    def closed(self, device: str, session: str) -> None:
        """``device`` closed the session's worker."""
        state = self.devices.get(device)
        if state is not None:
            state.sessions.discard(session)
            state.placing.pop(session, None)

    def stalled(self, seconds: float) -> None:
        """The broker itself did not run for ``seconds`` (it was stopped, or its loop held):
        that silence is its own, not the devices', so it does not count towards their
        expiry. Without this, a broker frozen past the expiry took every device for lost on
        waking, before reading the heartbeats queued for it meanwhile."""
        now = time.monotonic()
        for state in self.devices.values():
            if not state.lost:
                state.last_heard = min(now, state.last_heard + seconds)

    @contextlib.contextmanager
    def storing(self) -> Iterator[None]:
        """The broker stores a batch of its devices' messages, reading none of theirs
        meanwhile. A store write that waited (another process held SQLite's lock up to its
        busy timeout, a slow disk) is the broker's own silence, as a stop is
        (:meth:`stalled`): the devices' heartbeats waited unread; before, a live device was
        taken for lost and its running cells ended."""
        self.unread_since = time.monotonic()
        try:
            yield
        finally:
            if (held := time.monotonic() - self.unread_since) > UNREAD_COUNTED:
                self.stalled(held)
            self.unread_since = None

    def now(self) -> float:
        """The time up to which the broker has read what its devices sent."""
        return self.unread_since if self.unread_since is not None else time.monotonic()

    def expired(self) -> list[str]:
        """Devices that just went silent for too long; each is reported once, then marked
        lost until it is heard again."""
        now = self.now()
        gone = [d for d in self.devices.values() if not d.lost and now - d.last_heard > self.expiry]
        for state in gone:
            state.lost = True
            state.placing.clear()
            state.spoken.clear()
        return [d.device for d in gone]

    def alive(self, device: str | None) -> bool:
        state = self.devices.get(device) if device else None
        return state is not None and self.now() - state.last_heard <= self.expiry

    def live(self) -> list[DeviceState]:
        """Devices alive and taking work (not draining): the ones placement chooses from."""
        return [d for d in self.devices.values() if self.alive(d.device) and not d.draining]

    def drain(self, device: str) -> None:
        """``device`` is stopping: place nothing more on it."""
        state = self.devices.get(device)
        if state is not None:
            state.draining = True
            state.placing.clear()

    def left(self, device: str) -> None:
        """``device`` stopped after draining: forget it (it is not lost, it left)."""
        self.devices.pop(device, None)

    def holder(self, session: str) -> str | None:
        """The live device the session's worker is on (or starting on), if any."""
        for state in self.live():
            if state.holds(session):
                return state.device
        return None

    def room(self, kernel: str | None = None) -> int:
        """Free places over all live devices (that offer ``kernel``, if given)."""
        live = self.live() if kernel is None else self.offering(kernel)
        return sum(max(0, d.free) for d in live)

    def offering(self, kernel: str) -> list[DeviceState]:
        """Live devices that offer ``kernel``: the only ones a new session of it goes to."""
        return [d for d in self.live() if offers(d, kernel)]

    def known_kernels(self) -> dict[str, dict[str, str]]:
        """Every kernel a device the broker knows (live or not) offers, by name."""
        return {k["name"]: k for d in self.devices.values() for k in d.kernels}

    def place(self, session: str, current: str | None = None, *, reserve: int = 0,
              kernel: str = DEFAULT_KERNEL) -> str | None:
        """The device for ``session`` by the rule above, or None: no live device, or no room.

        A session that needs a new worker is placed only while the live devices have more than
        ``reserve`` free places (places promised to requests already waiting); ``current`` is
        the device it was on before. A new worker goes only to a device offering ``kernel``.
        """
        holder = self.holder(session)
        if holder is not None:
            return holder
        if self.awaited(current):
            return None  # its worker may live there: placed when that device reports
        live = self.offering(kernel)
        if not live or self.room() <= reserve or self.room(kernel) <= 0:
            return None
        state = self.devices.get(current) if current else None
        if state is None or state not in live or state.free <= 0:
            state = max(live, key=lambda d: (d.free, d.last_heard, d.device))
        state.placing[session] = time.monotonic()
        return state.device

    def awaited(self, device: str | None) -> bool:
        """Whether ``device``, a session's in the store, may still report to this broker
        process for the first time: it has not yet, within :attr:`startup_grace`. Its
        sessions wait for it rather than start afresh on a device that reported first,
        which lost their variables and ran their later cells beside the worker still running
        the earlier ones."""
        return device is not None and device not in self.devices and \
            time.monotonic() - self.started < self.startup_grace

    def unplace(self, session: str) -> None:
        """Take back a placement that was not used (the request was not accepted after all)."""
        for state in self.devices.values():
            state.placing.pop(session, None)
            state.spoken.discard(session)

    def routing_id(self, device: str) -> bytes | None:
        state = self.devices.get(device)
        return state.routing_id if state else None


def _int(value: Any, default: int) -> int:
    good = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value if good else default


def offers(state: DeviceState, kernel: str) -> bool:
    """Whether the device ``state`` offers ``kernel``."""
    return any(k["name"] == kernel for k in state.kernels)

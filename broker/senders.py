"""Who may send what on the device port: a signed message is taken only from the sender it
belongs to.

The deployment key proves that a node of this deployment made a message, not who sends it
now: issue 20's audit subscribed to the feed and sent a published ``execute_input`` back to
the device port, unchanged, from a DEALER with a made-up identity, and it was stored again.
So every message from the device port is judged here, once, before it counts (the broker
calls :meth:`Senders.judge` from one place):

- ``revoked`` / ``key``: on CURVE links, the sending connection's key (the ZAP handler's
  User-Id) must still be allowed, and must be the key the device's name first came with,
  or the new key of the same certificate (``cert --rotate``: the key folder files both
  under one name), which the name is then bound to;
- ``request``: only what a session says (``WORKER_OUTPUT_TYPES``) and the device's own notes come
  from a device; requests come from gateways, on the gateway port
- ``published``: a message carrying a ``seq`` is one the broker published (only the
  broker assigns seqs, and a device never sends one): it never comes back in;
- ``unknown-device``: output comes from a device that registered;
- ``not-holder``: a session's output comes only from a device the broker handed the session
  to (in this process, or as the store says at start), or that reports its worker.

The first four refuse a message outright (:attr:`Judgement.REFUSE`). ``not-holder``
(:attr:`Judgement.SKIP`) drops the message but lets its outbox number count as received, so
the device's outbox moves past it instead of sending it again forever. Each refusal is
counted (``cellbus_bus_messages_rejected{reason=...}``) and logged at most once per sender
per :data:`LOG_INTERVAL`, with the count since its last line: a warning, but for the output
a device the store had sessions on sends across this broker's restart, before it registers
again (its outbox sends that again once it has), which is said at INFO as what it is.
"""

from __future__ import annotations

import collections
import enum
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from protocol import msgtypes as mt
from protocol.heartbeat import device_name
from protocol.wire import Message

from .placement import DeviceTable
from .store import SessionRecord

#: Seconds between two log lines about the refusals of one sender.
LOG_INTERVAL = 60.0
#: Sessions whose devices are remembered; one forgotten falls back to the devices' reports.
MAX_SESSIONS = 100_000
#: Device messages that are about the device itself, not a session.
CONTROL = frozenset({mt.DEVICE_REGISTER, mt.DEVICE_HEARTBEAT, mt.DEVICE_DRAIN,
                     mt.SESSION_CLOSED})


class Judgement(enum.Enum):
    TAKE = "take"
    REFUSE = "refuse"  # dropped before it counts for anything
    SKIP = "skip"  # dropped, but its outbox number counts as received


class Senders:
    """The device port's sender rules (see the module docstring)."""

    def __init__(self, devices: DeviceTable, rejected: collections.Counter[str],
                 log: logging.Logger, *, peer_keys: dict[bytes, str] | None = None,
                 holder: Callable[[str, str], str | None] | None = None) -> None:
        """``holder(role, key)``: whose certificate ``key`` is (:meth:`_RoleKeys.holder`)."""
        self.devices = devices
        self.rejected = rejected
        self.log = log
        #: The device socket's routing id -> CURVE key (None without CURVE).
        self.peer_keys = peer_keys
        self.holder = holder
        #: Keys (z85) revoked while this broker runs (:mod:`broker.revocation`).
        self.revoked: set[str] = set()
        #: Device name -> the key it first came with.
        self.names: dict[str, str] = {}
        #: Session -> the devices it was handed to, the most recent sessions last.
        self.handed: collections.OrderedDict[str, set[str]] = collections.OrderedDict()
        self._logged: dict[str, tuple[float, int]] = {}  # sender -> (when, refused since)
        #: Devices the store had open sessions on when this broker started: one of them
        #: heard before it registers is a device across this broker's restart, no stranger.
        self.before: set[str] = set()

    def seed(self, records: Iterable[SessionRecord]) -> None:
        """The open sessions the store holds, and the device each is on (at start)."""
        for record in records:  # one on no device is known to be on none
            self.handed.setdefault(record.session, set())
            if record.device:
                self.handed_to(record.session, record.device)
                self.before.add(record.device)

    def handed_to(self, session: str, device: str) -> None:
        """The broker handed a request of ``session`` to ``device``."""
        self.handed.setdefault(session, set()).add(device)
        self.handed.move_to_end(session)
        if len(self.handed) > MAX_SESSIONS:
            self.handed.popitem(last=False)

    def revoke(self, key: str) -> None:
        """``key`` was revoked: its messages are refused from now on (even if it comes back
        to the folder: only a broker restart forgives it), and a device name that came with
        it is free for another key."""
        self.revoked.add(key)
        self.names = {name: k for name, k in self.names.items() if k != key}

    def judge(self, idents: list[bytes], msg: Message) -> Judgement:
        """Whether the broker takes ``msg``, received on the device port from ``idents``."""
        device = device_name(idents[0] if idents else b"")
        why = self._refusal(idents, device, msg)
        if why is None:
            return Judgement.TAKE
        self._refused(device, why, msg)
        return Judgement.SKIP if why == "not-holder" else Judgement.REFUSE

    def _refusal(self, idents: list[bytes], device: str, msg: Message) -> str | None:
        kind = msg["msg_type"]
        if self.peer_keys is not None and idents:
            key = self.peer_keys.get(idents[0])
            if key in self.revoked:
                return "revoked"
            if key is not None and self.names.setdefault(device, key) != key:
                if not self._rotated(device, key):
                    return "key"
        if kind in CONTROL:
            return None
        if kind not in mt.WORKER_OUTPUT_TYPES:  # a request, or anything no session says
            return "request"
        facts: Any = msg["metadata"].get("cellbus")
        if isinstance(facts, dict) and "seq" in facts:
            return "published"
        state = self.devices.devices.get(device)
        if state is None:
            return "unknown-device"
        session = facts.get("session") if isinstance(facts, dict) else None
        if isinstance(session, str) and session:
            if device in self.handed.get(session, ()) or state.holds(session):
                return None
            return "not-holder"
        return None  # no session: the broker drops it as such

    def _rotated(self, device: str, key: str) -> bool:
        """Whether ``key`` is the new key of the certificate ``device`` came with (then its
        name is bound to it from now on)."""
        if self.holder is None:
            return False
        holder = self.holder("device", key)
        if holder is None or self.holder("device", self.names[device]) != holder:
            return False
        self.names[device] = key
        self.log.info("broker: device %r speaks with the new key of certificate %s now (%s...)",
                      device, holder, key[:12])
        return True

    def _refused(self, sender: str, why: str, msg: Message) -> None:
        self.rejected[why] += 1
        now = time.monotonic()
        when, unlogged = self._logged.get(sender, (0.0, 0))
        unlogged += 1
        if when and now - when < LOG_INTERVAL:
            self._logged[sender] = (when, unlogged)
            return
        if len(self._logged) > MAX_SESSIONS:  # made-up senders without end: start over
            self._logged.clear()
        self._logged[sender] = (now, 0)
        since = f"; {unlogged} refused from it since the last line" if unlogged > 1 else ""
        if why == "unknown-device" and sender in self.before:  # what it sent as this started
            self.log.info("broker: device %r sent a %s before it registered again with this "
                          "broker (restarted); its outbox sends it again once it has%s",
                          sender, msg["msg_type"], since)
            return
        self.log.warning("broker refused a %s from %r on the device port (%s)%s", msg["msg_type"],
                         sender, why, since)

"""Closes a device hears late: the worker of a closed session must not outlive it.

A session is closed by a restart of its worksheet, a deletion of the worksheet's runs or a
Jupyter kernel's shutdown (:meth:`broker.control.Control.close`), which sends the device
holding it a ``shutdown_request``. When the device cannot be told then (the broker restarted
and the device has not reported yet, or it is cut off for a moment), nothing told it later:
its worker went on holding a place and its memory, unreachable by any request, until the
device's ``--idle-timeout``, and enough such closes filled a device (503 "at capacity").

So the close is told when the device next reports the session:

- while this broker runs, it remembers each close (:meth:`LateCloses.noted`); a device that
  reports a session closed and not told, or told more than :data:`RETELL_AFTER` heartbeat
  expiries ago (the note lost with a dropped connection), gets its ``shutdown_request`` now
  (:meth:`LateCloses.reported`, on every report);
- a device that registers, or reports for the first time to a restarted broker, lists its
  sessions; each one the store has closed gets a ``shutdown_request`` too, and one the store
  does not have at all a ``session_closed`` (:meth:`LateCloses.joined`).

The device ends such a worker as it ends any shut-down one: a cell it was running and the
cells queued behind it end with an error the device sends up, so every request still ends
once, and the device reports ``session_closed``. A closed session is never opened again (a
worksheet's next request opens a new one), so none of this reaches a session that is open
or a cell it runs.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Iterable
from typing import Any

from protocol import msgtypes as mt
from protocol.recent import forget_oldest
from protocol.wire import Session

from .dispatch import Dispatch
from .store import DELETING, OPEN, Store

#: Closes remembered while this broker runs (the oldest forgotten first).
MAX_CLOSED = 65536
#: Heartbeat expiries after which a close told to a device that still reports the session is
#: told again (a worker shut down ends within the device's exit grace, well below this).
RETELL_AFTER = 2
#: The reason a device is given for a session the store has no record of.
UNKNOWN = "unknown to the broker"


@dataclasses.dataclass
class _Close:
    facts: dict[str, Any]  # the shutdown_request's metadata.cellbus
    told: float | None  # when the device was sent it (monotonic); None: not yet


class LateCloses:
    """Tells a device of closes it missed, when it reports their sessions (module docstring)."""

    def __init__(self, *, wire: Session, store: Store, dispatch: Dispatch,
                 log: logging.Logger) -> None:
        self.wire, self.store, self.dispatch, self.log = wire, store, dispatch, log
        self.closes: collections.OrderedDict[str, _Close] = collections.OrderedDict()

    @staticmethod
    def shutdown_facts(user: str, worksheet: str, cell_id: str,
                       session: str) -> dict[str, Any]:
        """The ``metadata.cellbus`` of the ``shutdown_request`` that closes ``session``."""
        return {"user": user, "worksheet": worksheet, "cell_id": cell_id, "session": session}

    def shutdown(self, facts: dict[str, Any]) -> dict[str, Any]:
        """A fresh ``shutdown_request`` (each sending is a message of its own: a device
        rejects a signature it has seen)."""
        return self.wire.msg(mt.SHUTDOWN_REQUEST, {"restart": False},
                             metadata={"cellbus": dict(facts)})

    def noted(self, facts: dict[str, Any], told: bool) -> None:
        """The session of ``facts`` was closed; its device was sent the shutdown (``told``)
        or could not be."""
        self.closes[facts["session"]] = _Close(facts, time.monotonic() if told else None)
        self.closes.move_to_end(facts["session"])
        forget_oldest(self.closes, MAX_CLOSED)

    def forget(self, session: str) -> None:
        """The device reported the session closed: its worker is gone."""
        self.closes.pop(session, None)

    def reported(self, device: str, sessions: Iterable[str]) -> None:
        """``device`` reports ``sessions``: tell it of the closes among them it missed."""
        if not self.closes:
            return
        now = time.monotonic()
        after = RETELL_AFTER * self.dispatch.devices.expiry
        for session in sessions:
            close = self.closes.get(session)
            if close is None or (close.told is not None and now - close.told < after):
                continue
            if not self._tell(device, self.shutdown(close.facts)):
                return  # not connected after all: its next report tries again
            self.log.warning("broker: device %s reports session %s, closed %s; its worker "
                             "is shut down now", device, session, "while the device could "
                             "not be told" if close.told is None else "a while ago")
            close.told = now

    async def joined(self, device: str, sessions: Iterable[str]) -> set[str]:
        """``device`` registered with ``sessions``: those the store has closed or not at all
        are told to end (unless a close this broker made is told by :meth:`reported`); the
        sessions not open, which the caller places nowhere."""
        gone: set[str] = set()
        for session in sessions:
            if session in self.closes:
                gone.add(session)
                continue
            record = await self.store.get_session(session)
            if record is not None and record.state in (OPEN, DELETING):
                continue  # a deletion under way closes it, and tells the device, at its end
            gone.add(session)
            if record is None:
                told = self._tell(device, self.wire.msg(
                    mt.SESSION_CLOSED, {"session": session, "reason": UNKNOWN},
                    metadata={"cellbus": {"session": session}}))
            else:  # remembered: told again should the note be lost
                facts = self.shutdown_facts(record.user, record.worksheet, "", session)
                told = self._tell(device, self.shutdown(facts))
                self.noted(facts, told)
            if told:
                self.log.warning("broker: device %s reports session %s, which the store has "
                                 "%s; its worker is ended", device, session,
                                 "closed" if record else "no record of")
        return gone

    def _tell(self, device: str, note: dict[str, Any]) -> bool:
        routing_id = self.dispatch.devices.routing_id(device)
        return routing_id is not None and self.dispatch.offer(routing_id, note)

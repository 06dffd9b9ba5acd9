"""What the broker does when devices come, go and come back (Paranoid Pirate, broker side).

The broker heartbeats every device it knows and takes a device for lost once it has been
silent for ``HEARTBEAT_INTERVAL * HEARTBEAT_LIVENESS`` seconds. A lost device's running
requests end with a ``DeviceLost`` error (written into the cell's output like any other
message); its queued requests are placed again (on another device, or on it once it is
back). Its sessions are gone for their worksheets (``session_closed``, ``device lost``).
Should the device be heard again (frozen or cut off, not dead), it is told at once to end its
workers of those sessions
(:meth:`DeviceWatch.came_back`), before any request can reach them: the next cell of such a
worksheet starts a fresh worker, as the user was told, and no old worker answers twice. An old
worker may still start a queued request before it hears (the device ran on; the request had
gone to it before): what it says of that hand-out (``metadata.cellbus.sent``) is dropped,
since the request runs again from its new one. That holds across a broker restart too, in
the store's terms: the lost device's sessions are on no device in the store until placed
again, and a restarted broker that hears a device report a session the store had on no
device or another one takes it as above (:meth:`DeviceWatch.reported`), dropping what the
old worker says of a previous broker's hand-outs.

When a device registers, or is heard again after being lost or after the broker restarted,
its report of the requests it holds is reconciled with the store: requests it still holds
are left to it, queued ones it no longer has are sent again, and running ones it no longer
has end with ``DeviceLost``. Only requests handed out before the report arrived are
reconciled with it: one handed out while the store was being read went to the device that
sent the report, which could not list it yet. Nor is one the device had not read when it
built the report, which arrived later (the ``heard`` it reports, :mod:`broker.handed`): a
device that registers again as it reads a hand-out builds its register before it takes the
hand-out in; such a hand-out is in doubt until a later report settles it. Requests left
``working`` by a previous broker on a device that never comes back end the same way once the
grace period after start-up has passed. A request whose reply and closing idle status are
already stored (the broker died between storing them and noting that the request ended)
ends as its reply says instead.

A device that stops gracefully (SIGTERM) drains (``device_drain``, see
:mod:`device.router`): the broker places nothing more on it and places elsewhere the
requests it hands back; on its final ``device_drain`` the broker also takes back whatever
it still had placed there, ends with ``DeviceStopped`` anything still running there (its
output up to then is stored), forgets the device and answers, so the device may leave.
"""

from __future__ import annotations

import collections
import collections.abc
import logging
import time
from typing import Any

from protocol import msgtypes as mt
from protocol.recent import forget_oldest
from protocol.requests import Ending, failed
from protocol.wire import Session

from .closures import DEVICE_LOST, SessionEnds
from .devicebeats import DeviceBeats
from .dispatch import Dispatch
from .lateclose import LateCloses
from .metrics import BrokerMetrics
from .output import Outputs
from .store import DONE, ERROR, NEEDS_WORK, OPEN, WORKING, Request, Store, StoreError


#: Hand-outs taken back from lost devices remembered, for what their old workers send.
MAX_REVOKED = 65536


class DeviceWatch(DeviceBeats):
    """Heartbeats devices, and reconciles the store with them as they come, go and drain."""

    def __init__(self, *, wire: Session, store: Store, dispatch: Dispatch, outputs: Outputs,
                 metrics: BrokerMetrics, log: logging.Logger,
                 ends: SessionEnds | None = None) -> None:
        self.wire, self.store, self.dispatch = wire, store, dispatch
        self.outputs, self.metrics, self.log = outputs, metrics, log
        self.ends = ends  # tells a lost device's worksheets (broker/closures.py)
        self.devices = dispatch.devices
        #: Device taken for lost -> its sessions then, whose workers end if it comes back.
        self.taken: dict[str, set[str]] = {}
        #: Queued requests of a lost device's sessions -> the hand-outs taken back from it:
        #: what an old worker says of any of them is dropped (newest kept). Every one, not
        #: the last only: a device lost again and again (a link that breaks under traffic,
        #: an MTU black hole) ran the cell from each, and once its link carried them, the
        #: outputs of all but the last hand-out were stored too (a cell's output thrice).
        self.revoked: collections.OrderedDict[str, set[str]] = collections.OrderedDict()
        #: Device heard again -> sessions it was told to end -> when (monotonic).
        self.ending: dict[str, dict[str, float]] = {}
        #: Device told to end all its taken sessions' workers -> :meth:`Handed.mark` then: a
        #: hand-out after it went behind those notes, to a fresh worker (:meth:`lost`).
        self.back: dict[str, int] = {}
        #: (device, session) taken on the device's report after a restart (:meth:`disown`).
        self.disowned: collections.OrderedDict[tuple[str, str], None] = \
            collections.OrderedDict()
        #: Closes a device could not be told when they were made (broker/lateclose.py).
        self.late = LateCloses(wire=wire, store=store, dispatch=dispatch, log=log)

    async def lost(self, device: str, why: str = "") -> None:
        state = self.devices.devices.get(device)
        self.back.pop(device, None)
        taken = self.taken.setdefault(device, set())
        worked = set(state.sessions) if state is not None else set()
        if state is not None:  # none of them may be placed on their old workers again
            taken.update(worked)
            state.sessions.clear()
        self.log.warning("broker: device %s is lost (%s)", device,
                         why or f"silent for {self.devices.expiry:.0f} s")
        self.metrics.devices_lost.inc()
        closing: list[str] = []  # first in the store: a broker restarted from here on knows it
        known, late = set(taken), set[str]()  # late: in the store only (placed since a report)
        for record in await self.store.sessions(OPEN):
            if record.device == device:
                if record.session not in known:
                    late.add(record.session)
                taken.add(record.session)
                record.device = None  # what a restarted broker reads: placed afresh
                await self.store.put_session(record)
                self.dispatch.sessions.stored(record)
                closing.append(record.session)
        late = self._tell_late(device, taken, late)
        for request in await self.store.requests(WORKING, device=device):
            if request.session not in late and self._after_back(device, request.msg_id):
                continue
            worked.add(request.session)
            taken.add(request.session)
            self.dispatch.handed.discard(request.msg_id)  # with no device, even if not ended
            await self.fail(request, f"the device {device} running this cell stopped "
                                     "answering; run the cell again")
        for request in await self.store.requests(NEEDS_WORK, device=device):
            if request.session not in late and self._after_back(device, request.msg_id):
                continue
            nonce = self.dispatch.handed.nonce(request.msg_id)
            self.dispatch.take_back(request.msg_id, request.session)
            # Its worker there is told to end if the device comes back (its session is taken,
            # whether or not a heartbeat listed it yet: one stuck behind the output it ran
            # never did), and the request runs from its new hand-out.
            if request.session in taken and nonce is not None:
                self.revoked.setdefault(request.msg_id, set()).add(nonce)
                self.revoked.move_to_end(request.msg_id)
                forget_oldest(self.revoked, MAX_REVOKED)
        for session in closing:
            if self.ends is not None:
                await self.ends.closed(session, DEVICE_LOST)
        await self.dispatch.dispatch_pending()

    def _tell_late(self, device: str, taken: set[str], late: set[str]) -> set[str]:
        """The sessions of ``late`` (:meth:`lost` found them in the store only) that
        ``device`` was heard again before they were taken: it is told now to end their old
        workers (:meth:`came_back`; before, it never was, and they ran on with the variables
        their worksheets were told are gone), and their requests handed to it meanwhile,
        which went to those workers, are taken back like the rest."""
        if self.taken.get(device) is taken:
            return set()  # not back yet: came_back tells them with the rest
        late -= self.ending.get(device, {}).keys()
        if not late:
            return late
        self.taken.setdefault(device, set()).update(late)
        state = self.devices.devices.get(device)
        if state is not None:  # its report since listed them: not placed on them again
            state.sessions.difference_update(late)
        self.came_back(device)
        return late

    def _after_back(self, device: str, msg_id: str) -> bool:
        """Whether ``msg_id`` went to ``device`` after it came back, while :meth:`lost` read
        the store: behind the notes ending the old workers, to a fresh one. Taken back, it
        was revoked and sent again, a copy the device ignores: it never ended."""
        back = self.back.get(device)
        return back is not None and self.dispatch.handed.since(msg_id, back)

    def reported(self, device: str, report: dict[str, Any],
                 holders: collections.abc.Mapping[str, set[str]]) -> None:
        """A report of ``device``, once the device is in the table: :meth:`disown` what it
        should not hold and tell it at once (:meth:`came_back`), before its reconciliation
        (:meth:`joined`) reads the report."""
        self.disown(device, report, holders)
        if device in self.taken:
            self.came_back(device, report)
        sessions = report.get("sessions")
        if isinstance(sessions, list):
            self.late.reported(device, (s for s in sessions if isinstance(s, str)))

    def rejoined(self, device: str, report: dict[str, Any], upto: int) -> None:
        """``device`` registered or is heard again: the requests handed to it up to ``upto``
        (:meth:`Handed.upto`: those it could see when it built its report) that its report
        does not list are taken back now (:meth:`Dispatch.take_back`), so that none accepted
        from here on goes out ahead of them; the ones after ``upto`` it does not list are in
        doubt (:meth:`Handed.doubt`) until a later report settles them; :meth:`joined`
        reconciles the rest."""
        held = report.get("requests")
        listed = set(held) if isinstance(held, list) else set()
        handed = self.dispatch.handed
        for msg_id, session in handed.on(device):
            if msg_id in listed:
                handed.settle(msg_id)
            elif not handed.since(msg_id, upto):
                self.dispatch.take_back(msg_id, session)
            else:
                handed.doubt(msg_id)

    def disown(self, device: str, report: dict[str, Any],
               holders: collections.abc.Mapping[str, set[str]]) -> None:
        """A report of ``device`` lists sessions: one that ``holders`` (the store's open
        sessions and their devices as the broker read them at start, and the devices this
        broker handed each to since: :class:`Senders`) places elsewhere or nowhere has an
        old worker there, left by a device taken for lost before the broker restarted. It is
        taken as :meth:`lost` takes one (:meth:`came_back` tells the device to end it), and
        what its old worker says of a previous broker's hand-outs is dropped (:meth:`stale`)."""
        sessions = report.get("sessions")
        told = self.ending.get(device, {})
        for session in sessions if isinstance(sessions, list) else []:
            if not isinstance(session, str) or session in told:
                continue
            known = holders.get(session)
            if known is None or device in known:
                continue  # not known to be elsewhere (or the broker's record lags): left
            self.log.warning("broker: device %s reports session %s, which the store has on "
                             "%s: its worker is ended", device, session,
                             ", ".join(sorted(known)) or "no device")
            self.taken.setdefault(device, set()).add(session)
            self.disowned[(device, session)] = None
            forget_oldest(self.disowned, MAX_REVOKED)

    def stale(self, device: str, facts: dict[str, Any]) -> bool:
        """Whether a message (its ``metadata.cellbus``) from ``device`` is of a hand-out a
        previous broker made of a session :meth:`disown` took there: its old worker ran it
        before hearing, and the request runs again from this broker's hand-out."""
        return ("sent" in facts and (device, facts.get("session")) in self.disowned
                and not self.dispatch.ours(facts["sent"]))

    def came_back(self, device: str, report: dict[str, Any] | None = None) -> None:
        """A message from ``device``. If it was taken for lost, tell it now (before anything
        dispatched can reach it) to end the workers of the sessions taken with it; and for
        the expiry after, take those sessions out of its reports (``report`` is changed in
        place), which may still list them, so that none is placed on an old worker."""
        taken = self.taken.get(device)
        if taken is not None:
            routing_id = self.devices.routing_id(device)
            telling = self.ending.setdefault(device, {})
            before = len(telling)
            for session in list(taken):
                note = self.wire.msg(mt.SESSION_CLOSED, {"session": session,
                                                         "reason": DEVICE_LOST},
                                     metadata={"cellbus": {"session": session}})
                if routing_id is None or not self.dispatch.offer(routing_id, note):
                    break  # told with its next message
                taken.discard(session)
                telling[session] = time.monotonic()
            if not taken:  # the mark of the first telling: later ones go behind it too
                del self.taken[device]
                self.back.setdefault(device, self.dispatch.handed.mark())
            if len(telling) > before:
                self.log.warning("broker: device %s, taken for lost, is heard again; it ends "
                                 "the workers of the %d sessions whose work was ended",
                                 device, len(telling) - before)
        told = self.ending.get(device)
        if told is None or report is None:
            return
        now = time.monotonic()
        for session, when in list(told.items()):
            if now - when > self.devices.expiry:
                del told[session]
        if not told:
            del self.ending[device]
        sessions = report.get("sessions")
        if isinstance(sessions, list):
            report["sessions"] = [s for s in sessions if s not in told]
            state = self.devices.devices.get(device)
            if state is not None:
                state.sessions.difference_update(told)

    async def joined(self, device: str, report: dict[str, Any], upto: int,
                     lacking: bool = False) -> None:
        """A device registered or came back: reconcile what it holds with the requests handed
        out up to ``upto`` (:meth:`Handed.upto`: before its report arrived, and that it could
        see when it built it), then send it work. ``lacking``: its report says the store
        lacks output records it had confirmed (a restored backup): a cell it no longer runs
        may have ended in them, and the words say so, not that the device restarted."""
        held = report.get("requests")
        held = {r for r in held if isinstance(r, str)} if isinstance(held, list) else set()
        sent = self.dispatch.handed
        for request in await self.store.requests(WORKING, device=device):
            if request.msg_id not in held and not sent.since(request.msg_id, upto):
                if lacking:
                    await self.fail(request, f"the device {device} no longer runs this cell, and "
                                    "this broker's store lacks output it had sent (the store was "
                                    "restored from an older copy, or lost its last commits): "
                                    "its end is lost; run it again", "OutputLost")
                else:
                    await self.fail(request, f"the device {device} restarted and no longer "
                                    "runs this cell; run it again")
        ending = self.ending.get(device, {})  # their workers end, queues and all
        for request in await self.store.requests(NEEDS_WORK, device=device):
            if request.msg_id in held and request.session not in ending:
                sent.add(request.msg_id, session=request.session, device=device)
            elif not sent.since(request.msg_id, upto):
                self.dispatch.take_back(request.msg_id, request.session)
        sessions = report.get("sessions")
        sessions = [s for s in sessions if isinstance(s, str)] \
            if isinstance(sessions, list) else []
        taken = self.taken.get(device, set())  # ended already (above)
        gone = await self.late.joined(device, [s for s in sessions if s not in ending and
                                               s not in taken])  # closed: ended too
        for session_id in sessions:
            if session_id not in gone:
                await self.dispatch.note_placement(session_id, device)
        await self.dispatch.dispatch_pending()

    async def end_orphans(self) -> None:
        """After start-up: requests a previous broker left working on devices that never
        came back end with DeviceLost."""
        for request in await self.store.requests(WORKING):
            if not self.devices.alive(request.device):
                await self.fail(request, f"the device {request.device} running this cell did "
                                         "not come back after the broker restarted; run it again")

    async def drained(self, device: str, msg: dict[str, Any]) -> None:
        """A device that stops handed requests back (all it had, if ``final``); called once
        everything it sent before ``msg`` is stored."""
        content = msg["content"]
        returned = content.get("returned")
        returned = [r for r in returned if isinstance(r, str)] if isinstance(returned, list) \
            else []
        final = content.get("final") is True
        for msg_id in returned:
            self.dispatch.take_back(msg_id)
        stopped = 0
        if final:
            for request in await self.store.requests(NEEDS_WORK, device=device):
                self.dispatch.take_back(request.msg_id, request.session)
            for request in await self.store.requests(WORKING, device=device):
                stopped += 1
                self.dispatch.handed.discard(request.msg_id)  # as in lost()
                await self.fail(request, f"the device {device} running this cell stopped "
                                         "before it finished; run it again",
                                ename="DeviceStopped")
            self.devices.left(device)
        self.log.info("broker: device %s %s; %d requests handed back to place elsewhere%s",
                      device, "left" if final else "is draining", len(returned),
                      f", {stopped} unfinished cells ended" if stopped else "")
        await self.dispatch.dispatch_pending()
        if final:  # if it is gone already, it leaves anyway
            answer = self.wire.msg(mt.DEVICE_DRAIN_REPLY, {"ok": True}, parent=msg)
            self.dispatch.post_to(device, answer)

    async def fail(self, request: Request, why: str, ename: str = "DeviceLost") -> None:
        """End ``request`` with an error (DeviceLost unless ``ename``) in its cell's output,
        unless its stored output shows it ended already."""
        if await self.settle(request):
            return
        out = [(request.session, msg) for msg in failed(
            self.wire, request.message, ename, why, session=request.session,
            device=request.device)]
        try:
            await self.outputs.persist_and_publish(out)
        except StoreError as e:  # it stays working; the next reconciliation tries again
            self.log.warning("broker: could not end request %s with %s now: %s",
                             request.msg_id, ename, e)
            return
        self.log.warning("broker: request %s ends with %s: %s", request.msg_id, ename, why)

    async def settle(self, request: Request) -> bool:
        """If ``request``'s reply and the idle status after it are stored, move it to done or
        error as the reply says (a broker that died in between did not) and return True."""
        if request.status != WORKING:
            return False
        ending = Ending(request.msg_type)
        for _, stored in await self.store.messages(request.session, parent=request.msg_id):
            outcome = ending.see(str(stored.get("msg_type")), stored.get("content") or {})
            if outcome is not None:
                ok, error = outcome
                await self.outputs.set_status(request, DONE if ok else ERROR, error)
                await self.outputs.ended(request)
                self.log.info("broker: request %s had ended (%s) before the broker "
                              "noted it", request.msg_id, "done" if ok else "error")
                return True
        return False


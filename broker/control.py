"""Control requests from gateways: restart a worksheet's session, and the broker's status.

``restart_request`` (names a cell): the worksheet's open session is closed in the store, its
queued requests that no device has been given end with ``SessionRestarted``, and the device
running it gets a ``shutdown_request`` so its worker ends. The worksheet's next request starts
a new session (only open sessions are found). With ``"shutdown": true`` (a Jupyter kernel's
shutdown) the session ends for good: every gateway hears it (:data:`SHUT_DOWN`).

``broker_status_request`` (names no cell; ``bin/cellbus status``): every device the broker
knows with capacity, load, free places and sessions, the requests waiting, and the clients
its CURVE ports refused lately (:mod:`protocol.refusals`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from protocol.kernels import SHUT_DOWN
from protocol.refusals import Refusals
from protocol.version import VERSION
from protocol.wire import Message, Session

from .devices import DeviceWatch
from .dispatch import Dispatch
from .gateways import Gateways
from .refusal import Address, Reply
from .sessions import OpenSessions
from .store import CLOSED, NEEDS_WORK, SessionRecord, Store

#: Sessions listed per device in a status reply at most.
MAX_LISTED = 500


class Control:
    """Answers ``restart_request`` and ``broker_status_request``."""

    def __init__(self, *, wire: Session, store: Store, sessions: OpenSessions,
                 dispatch: Dispatch, watch: DeviceWatch, store_writable: Callable[[], bool],
                 log: logging.Logger, refusals: Refusals | None = None,
                 gateways: Gateways | None = None) -> None:
        self.wire, self.store, self.sessions = wire, store, sessions
        self.gateways = gateways or Gateways(log)
        self.dispatch, self.watch, self.log = dispatch, watch, log
        self.store_writable = store_writable
        self.refusals = refusals

    async def restart(self, msg: Message, address: Address) -> Reply:
        """Close the worksheet's session; the next request gets a fresh one."""
        user, worksheet, cell_id = address
        record = await self.sessions.find(user, worksheet)
        if record is None:
            return {"cell_id": cell_id, "status": "restarted", "closed": None}, []
        shutdown = msg["content"].get("shutdown") is True
        await self.close(record, address, why="shut down" if shutdown else "restarted",
                         for_good=shutdown)
        return {"cell_id": cell_id, "status": "restarted", "closed": record.session}, []

    async def close(self, record: SessionRecord, address: Address,
                    why: str = "restarted", for_good: bool = False) -> None:
        """Close the open session ``record`` of the worksheet at ``address`` as the module
        docstring says; ``why``: for the log (a restart, or a deletion of the worksheet's
        runs: broker/deletion.py). ``for_good`` (a Jupyter kernel's shutdown, a deletion):
        its feed gets a ``session_closed`` note saying :data:`SHUT_DOWN` at once, so that the
        kernel's channels on every gateway close, not only on the one that asked."""
        record.state = CLOSED
        record.last_activity = time.time()
        await self.store.put_session(record)
        await self.end_worker(record, address, why)
        if for_good and self.watch.ends is not None:
            await self.watch.ends.closed(record.session, SHUT_DOWN)

    async def end_worker(self, record: SessionRecord, address: Address, why: str) -> None:
        """The session ``record`` is no longer open (``record.state`` is in the store): end
        its worker, its queued requests and its place in the open-session cache."""
        user, worksheet, cell_id = address
        self.sessions.stored(record)
        self.dispatch.release(record.session)
        for request in await self.store.requests(NEEDS_WORK):
            if request.session == record.session and request.msg_id not in self.dispatch.handed:
                await self.watch.fail(request, "the session was restarted before this cell "
                                      "ran; run it again", ename="SessionRestarted")
        device = self.dispatch.holding(record.session, record.device)
        late = self.watch.late  # a device not told now is told when it reports the session
        facts = late.shutdown_facts(user, worksheet, cell_id, record.session)
        # it ends the session's worker; the reply is stored as output
        late.noted(facts, device is not None and await self.dispatch.send_to(
            device, late.shutdown(facts)))
        self.log.info("broker: %s %s/%s: closed session %s (device %s)", why, user,
                      worksheet, record.session, device or "none")

    async def status(self, msg: Message, address: Address) -> Reply:
        """Devices (alive, capacity, load, free, sessions), the requests waiting and the
        gateways heard."""
        table = self.dispatch.devices
        now = time.monotonic()
        devices = []
        for state in sorted(table.devices.values(), key=lambda d: d.device):
            names = sorted(state.sessions | set(state.placing))
            sessions = []
            for session_id in names[:MAX_LISTED]:
                record = await self.store.get_session(session_id)
                sessions.append({"session": session_id,
                                 "user": record.user if record else None,
                                 "worksheet": record.worksheet if record else None,
                                 "starting": session_id not in state.sessions})
            devices.append({
                "device": state.device, "alive": table.alive(state.device),
                "capacity": state.capacity, "load": state.load, "free": state.free,
                "draining": state.draining,
                "silent": round(now - state.last_heard, 1), "session_count": len(names),
                "sessions": sessions, "sandbox": state.sandbox, "rejected": state.rejected,
                "version": state.version})
        waiting = await self.store.requests(NEEDS_WORK)
        return {"devices": devices, "needs_work": len(waiting), "version": VERSION,
                "store_writable": self.store_writable(),
                "not_sent": sum(1 for r in waiting if r.msg_id not in self.dispatch.handed),
                "waiting_for_room": len(self.dispatch.held),
                "refused": self.refusals.recent() if self.refusals is not None else [],
                "gateways": self.gateways.listing()}, []

"""Control requests from gateways: restart a worksheet's session, and the broker's status.

``restart_request`` (names a cell): the worksheet's open session is closed in the store, its
queued requests that no device has been given end with ``SessionRestarted``, and the device
running it gets a ``shutdown_request`` so its worker ends. The worksheet's next request starts
a new session (only open sessions are found).

``broker_status_request`` (names no cell; ``bin/cellbus status``): every device the broker
knows with capacity, load, free places and sessions, and the requests waiting.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import zmq

from protocol import msgtypes as mt
from protocol.wire import Message

from .store import CLOSED, NEEDS_WORK

if TYPE_CHECKING:
    from .intake import Address, Intake
    from .node import Broker

#: Sessions listed per device in a status reply at most.
MAX_LISTED = 500
Reply = tuple[dict[str, Any], list[bytes]]


class Control:
    def __init__(self, broker: Broker, intake: Intake) -> None:
        self.broker = broker
        self.intake = intake
        self.store = broker.store

    async def restart(self, msg: Message, address: Address) -> Reply:
        """Close the worksheet's session; the next request gets a fresh one."""
        broker = self.broker
        user, worksheet, cell_id = address
        record = await self.intake.session_for(user, worksheet)
        if record is None:
            return {"cell_id": cell_id, "status": "restarted", "closed": None}, []
        record.state = CLOSED
        record.last_activity = time.time()
        await self.store.put_session(record)
        self.intake.sessions.stored(record)
        broker.held.discard(record.session)
        for request in await self.store.requests(NEEDS_WORK):
            if request.session == record.session and request.msg_id not in broker.sent:
                await broker.watch.fail(request, "the session was restarted before this cell "
                                        "ran; run it again", ename="SessionRestarted")
        device = broker.devices.holder(record.session)
        if device is None and broker.devices.alive(record.device):
            device = record.device
        if device is not None:
            await self._shutdown(device, record.session, address)
        broker.log.info("broker: restarted %s/%s: closed session %s (device %s)", user,
                        worksheet, record.session, device or "none")
        return {"cell_id": cell_id, "status": "restarted", "closed": record.session}, []

    async def _shutdown(self, device: str, session_id: str, address: Address) -> None:
        """Ask ``device`` to end the session's worker (its reply is stored like any output)."""
        broker = self.broker
        routing = broker.devices.routing_id(device)
        if routing is None:
            return
        user, worksheet, cell_id = address
        request = broker.session.msg(mt.SHUTDOWN_REQUEST, {"restart": False}, metadata={
            "cellbus": {"user": user, "worksheet": worksheet, "cell_id": cell_id,
                        "session": session_id}})
        try:
            await broker.session.send(broker.device_sock, request, [routing])
        except zmq.ZMQError as e:  # gone: its worker went with it
            broker.log.info("broker could not ask device %s to end session %s: %s", device,
                            session_id, e)

    async def status(self, msg: Message, address: Address) -> Reply:
        """Devices (alive, capacity, load, free, sessions) and the requests waiting."""
        broker = self.broker
        table = broker.devices
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
                "silent": round(now - state.last_heard, 1), "session_count": len(names),
                "sessions": sessions, "sandbox": state.sandbox, "rejected": state.rejected})
        waiting = await self.store.requests(NEEDS_WORK)
        return {"devices": devices, "needs_work": len(waiting),
                "store_writable": broker.store_failing is None,
                "not_sent": sum(1 for r in waiting if r.msg_id not in broker.sent),
                "waiting_for_room": len(broker.held)}, []

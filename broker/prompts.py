"""Prompts at the broker: which session waits for an answer, and the answer's way to it.

A session's ``input_request`` is output like any other: stored with its seq and published
(so a page that reloads shows the pending prompt). The broker also notes it here, as the
one prompt its session waits on, until it is answered or the run that asked ends (an
interrupt, ``--input-timeout``, the worker's death all end it).

An ``input_reply`` from a gateway (``{"value"}``, for a cell) is *not* stored, neither is it
published nor logged: a password must never be. It goes to the device that holds the
worksheet's session, for that session only, and only if that cell's prompt is pending:
another cell, a prompt answered already or a run that ended is a 409, a cell that never ran
a 404. Pending prompts live in memory; after a broker restart a prompt still on screen
answers 409 until the cell runs again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from protocol import msgtypes as mt
from protocol.wire import Message

from .store import Request

if TYPE_CHECKING:
    from .intake import Address, Intake
    from .node import Broker


@dataclass
class Pending:
    """The prompt a session waits on: the run that asked, and its cell."""

    parent: str
    cell_id: str


class Prompts:
    def __init__(self, broker: Broker, intake: Intake) -> None:
        self.broker, self.intake = broker, intake
        self.pending: dict[str, Pending] = {}  # session -> its prompt

    def stored(self, session_id: str, msg: Message) -> None:
        """Note an output message just stored: an ``input_request`` is now pending."""
        if msg["msg_type"] != mt.INPUT_REQUEST:
            return
        parent = msg["parent_header"].get("msg_id")
        cell_id = (msg["metadata"].get("cellbus") or {}).get("cell_id")
        if isinstance(parent, str) and isinstance(cell_id, str):
            self.pending[session_id] = Pending(parent, cell_id)

    def ended(self, request: Request) -> None:
        """``request`` finished: a prompt it showed waits no more."""
        pending = self.pending.get(request.session)
        if pending is not None and pending.parent == request.msg_id:
            del self.pending[request.session]

    async def answer(self, msg: Message, address: Address) -> tuple[dict[str, Any], list[bytes]]:
        """Forward a gateway's ``input_reply`` to the waiting session (see the module doc)."""
        from .intake import Refused
        user, worksheet, cell_id = address
        value = msg["content"].get("value")
        if not isinstance(value, str):
            raise Refused(400, "input_reply needs a value, a string")
        if len(value.encode()) > mt.MAX_INPUT_REPLY:
            raise Refused(413, f"the answer is over the limit of {mt.MAX_INPUT_REPLY} bytes")
        if await self.broker.store.cell_request(user, worksheet, cell_id) is None:
            raise Refused(404, f"no cell {cell_id} in worksheet {worksheet}")
        session = await self.intake.session_for(user, worksheet)
        pending = self.pending.get(session.session) if session is not None else None
        routing = (self.broker.devices.routing_id(session.device)
                   if session is not None and session.device else None)
        if session is None or pending is None or pending.cell_id != cell_id or routing is None:
            raise Refused(409, f"cell {cell_id} waits for no input now: its prompt was "
                               "answered already, or its run ended")
        forward = self.broker.session.msg(mt.INPUT_REPLY, {"value": value}, metadata={
            "cellbus": {"user": user, "worksheet": worksheet, "cell_id": cell_id,
                        "session": session.session}})
        await self.broker.session.send(self.broker.device_sock, forward, [routing])
        del self.pending[session.session]
        return {"cell_id": cell_id, "session": session.session}, []

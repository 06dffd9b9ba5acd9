"""Prompts at the broker: which session waits for an answer, and the answer's way to it.

A session's ``input_request`` is output like any other: stored with its seq and published
(so a page that reloads shows the pending prompt). The broker also notes it here, as the
one prompt its session waits on, until it is answered or the run that asked ends (an
interrupt, ``--input-timeout``, the worker's death all end it).

An ``input_reply`` from a gateway (``{"value"}``, for a cell) is *not* stored, neither is it
published nor logged: a password must never be. It goes to the device that holds the
worksheet's session, for that session only, and only if that cell's prompt is pending:
another cell, a prompt answered already or a run that ended is a 409, a cell that never ran
a 404. Pending prompts are kept in memory as they are stored; a broker that restarted
finds a session's prompt in the store when its answer comes (the session's last stored
message is an ``input_request`` of a run still working), so a prompt on screen through a
broker restart is still answered.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from protocol import msgtypes as mt
from protocol.recent import forget_oldest
from protocol.wire import Message, Session

from .dispatch import Dispatch
from .refusal import Address, Refused, Reply
from .sessions import OpenSessions
from .store import WORKING, Request, Store


@dataclass
class Pending:
    """The prompt a session waits on: the run that asked, and its cell."""

    parent: str
    cell_id: str
    prompt: str  # the input_request's msg_id
    seq: int  # and its seq


#: Prompts answered by this broker process that are remembered, so that one found again in
#: the store (its answer's echo is not stored yet) is not answered twice.
ANSWERED_KEPT = 4096


class Prompts:
    """Which session waits on a prompt, and the answers to them (see the module doc)."""

    def __init__(self, *, wire: Session, store: Store, sessions: OpenSessions,
                 dispatch: Dispatch) -> None:
        self.wire, self.store, self.sessions, self.dispatch = wire, store, sessions, dispatch
        self.pending: dict[str, Pending] = {}  # session -> its prompt
        self.answered: OrderedDict[str, None] = OrderedDict()  # prompt msg_ids, oldest first

    def stored(self, session_id: str, msg: Message, seq: int) -> None:
        """Note an output message just stored: an ``input_request`` is now pending."""
        if msg["msg_type"] != mt.INPUT_REQUEST:
            return
        parent = msg["parent_header"].get("msg_id")
        cell_id = (msg["metadata"].get("cellbus") or {}).get("cell_id")
        if isinstance(parent, str) and isinstance(cell_id, str):
            self.pending[session_id] = Pending(parent, cell_id, msg["msg_id"], seq)

    async def _found(self, session_id: str) -> Pending | None:
        """The session's prompt as the store has it: its last message, an ``input_request``
        of a request still working that this process has not answered (after a restart)."""
        store = self.store
        last = await store.last_seq(session_id)
        stored = await store.messages(session_id, since=last - 1) if last else []
        if not stored or stored[-1][1]["msg_type"] != mt.INPUT_REQUEST:
            return None
        seq, msg = stored[-1]
        parent = msg["parent_header"].get("msg_id")
        if msg["msg_id"] in self.answered or not isinstance(parent, str):
            return None
        request = await store.get_request(parent)
        if request is None or request.status != WORKING:
            return None
        self.stored(session_id, msg, seq)
        return self.pending.get(session_id)

    def ended(self, request: Request) -> None:
        """``request`` finished: a prompt it showed waits no more."""
        pending = self.pending.get(request.session)
        if pending is not None and pending.parent == request.msg_id:
            del self.pending[request.session]

    async def answer(self, msg: Message, address: Address) -> Reply:
        """Forward a gateway's ``input_reply`` to the waiting session (see the module doc)."""
        user, worksheet, cell_id = address
        value = msg["content"].get("value")
        if not isinstance(value, str):
            raise Refused(400, "input_reply needs a value, a string")
        if len(value.encode()) > mt.MAX_INPUT_REPLY:
            raise Refused(413, f"the answer is over the limit of {mt.MAX_INPUT_REPLY} bytes")
        if await self.store.cell_request(user, worksheet, cell_id) is None:
            raise Refused(404, f"no cell {cell_id} in worksheet {worksheet}")
        session = await self.sessions.find(user, worksheet)
        pending = None
        if session is not None:
            pending = self.pending.get(session.session) or await self._found(session.session)
        # An answer may name its prompt (its seq, or its msg_id as Jupyter clients' parent
        # header does): a repeated or late answer then never answers the next prompt.
        named = msg["content"].get("prompt")
        if session is None or pending is None or (
                pending.cell_id != cell_id if named is None
                else named not in (pending.seq, pending.prompt)):
            raise Refused(409, f"cell {cell_id} waits for no input now: its prompt was "
                               "answered already, or its run ended")
        forward = self.wire.msg(mt.INPUT_REPLY, {"value": value}, metadata={
            "cellbus": {"user": user, "worksheet": worksheet, "cell_id": cell_id,
                        "session": session.session}})
        if not await self.dispatch.send_to_holder(session.session, session.device, forward):
            # The broker restarted and the device has not reported yet, or it is cut off.
            raise Refused(503, f"the device running cell {cell_id} is not connected now; "
                               "send the answer again shortly", retry_after=1)
        del self.pending[session.session]
        self.answered[pending.prompt] = None
        forget_oldest(self.answered, ANSWERED_KEPT)
        return {"cell_id": cell_id, "session": session.session}, []

"""Comm messages and queries from a channels client to its kernel, and their way there.

A Jupyter kernel's comms (ipywidgets, say) talk both ways. What the kernel sends
(``comm_open``, ``comm_msg``, ``comm_close``) is session output like any other: stored with
its seq, published, replayed. What a client sends (those three, ``comm_info_request``, and
its questions about code: ``complete_request``, ``inspect_request``, ``is_complete_request``,
all of which the session answers with a reply that is output too) comes here from a gateway,
for the worksheet of the token's user: it is checked (shape, size: its content and the
buffers a comm message may carry, a widget's bytes), *not* stored (it is no cell's run, and
a widget's state is the kernel's to keep), and goes to the device that holds that
worksheet's open session, for that session only, the way :mod:`.prompts` sends an answer to
a prompt. The device queues it behind the session's running cell; the worker hands it to
the kernel (or answers a query itself, for the built-in session) and relays what the kernel
says about it until its ``idle``.

The client's own header goes along as ``metadata.cellbus.reply_to``, which the device copies
into every message about it, so the gateway can give the kernel's answers the parent the
client knows (a Jupyter client waits for the idle status parented by its message).
"""

from __future__ import annotations

from typing import Any

import msgpack

from protocol import msgtypes as mt
from protocol import outputwords
from protocol.wire import Message, Session

from .dispatch import Dispatch
from .refusal import Address, Refused, Reply
from .sessions import OpenSessions

#: The comm messages that name their comm.
COMM_IDS = frozenset({mt.COMM_OPEN, mt.COMM_MSG, mt.COMM_CLOSE})
#: The fields of a client's header kept as ``reply_to``, and their longest value.
HEADER_FIELDS = ("msg_id", "msg_type", "session", "username", "date", "version")
MAX_HEADER_FIELD = 256


def reply_to(header: dict[str, Any]) -> dict[str, str]:
    """The client's header as the parent of the kernel's answers (strings, bounded)."""
    return {k: v for k in HEADER_FIELDS
            if isinstance(v := header.get(k), str) and len(v) <= MAX_HEADER_FIELD}


class Comms:
    """Forwards clients' comm messages to their worksheet's session (see the module doc)."""

    def __init__(self, *, wire: Session, sessions: OpenSessions, dispatch: Dispatch) -> None:
        self.wire, self.sessions, self.dispatch = wire, sessions, dispatch

    async def forward(self, msg: Message, address: Address) -> Reply:
        user, worksheet, cell_id = address
        msg_type, content = msg["msg_type"], msg["content"]
        # A widget's bytes go with a comm message; a query's would be for no one.
        buffers = (msg.get("buffers") or []) if msg_type in COMM_IDS else []
        if msg_type in COMM_IDS and not isinstance(content.get("comm_id"), str):
            raise Refused(400, f"{msg_type} needs a comm_id, a string")
        try:
            size = len(msgpack.packb(content, use_bin_type=True))
        except (TypeError, ValueError, OverflowError) as e:
            raise Refused(400, f"{msg_type} content cannot be carried: {e}") from None
        size += sum(len(b) for b in buffers)  # a widget's bytes count as its content does
        if size > mt.MAX_COMM_MESSAGE:
            with_buffers = " with its buffers" if buffers else ""
            raise Refused(413, f"the {msg_type} is {size} bytes{with_buffers}, over the "
                               "limit of a client's comm message, "
                               f"{outputwords.size(mt.MAX_COMM_MESSAGE)}")
        session = await self.sessions.find(user, worksheet)
        if session is None:
            raise Refused(409, f"worksheet {worksheet} runs no session now: run a cell first")
        forward = self.wire.msg(msg_type, content, metadata={"cellbus": {
            "user": user, "worksheet": worksheet, "cell_id": cell_id,
            "session": session.session, "reply_to": reply_to(msg["header"])}})
        if buffers:
            forward["buffers"] = buffers
        if not await self.dispatch.send_to_holder(session.session, session.device, forward):
            raise Refused(503, f"the device running worksheet {worksheet} is not connected "
                               "now; send it again shortly", retry_after=1)
        return {"session": session.session}, []

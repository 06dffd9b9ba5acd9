"""What a channels client asks of its kernel itself (its ``kernel_info``, its comms, its
questions about code): sent on to the session through the broker (broker/comms.py), whose
answers come back as the session's output, or answered here where it cannot go.

``kernel_info_request`` goes to the session as a query does, and the session answers with
its kernel's own ``kernel_info_reply`` (a Jupyter kernel's language_info, banner and
implementation, IRkernel's say), as jupyter_server passes a kernel's reply on; like a
kernel's, that answer would wait behind a running cell, and a kernel that starts is asked
nothing yet. So only an idle kernel is asked; for one that starts or runs a cell, and where a
request cannot go (no session yet, over ``--rate``, a kernel whose start failed), the
gateway answers at once with the last answer of a kernel of that name it relayed, else
from the kernelspec: jupyter_client's ``wait_for_ready`` (nbclient's, through
jupyter_server's ``GatewayKernelManager``) gives up on a kernel unanswered for a second.
"""

from __future__ import annotations

import collections
import logging
from typing import TYPE_CHECKING, Any

from protocol import msgtypes as mt
from protocol.queries import unanswered
from protocol.ratelog import RateLog
from protocol.recent import forget_oldest

from ..guard import rate_wait
from . import model, wire
from .kernelspecs import DEFAULT, kernelspecs, spec_of

if TYPE_CHECKING:
    from .channels import ChannelsHandler

#: What a client's messages make the gateway log, at a bounded rate per user and kind.
client_log = RateLog(logging.getLogger("cellbus.gateway"))
#: The last ``kernel_info_reply`` content relayed of a kernel of each name (at most
#: :data:`MAX_KNOWN` names, the oldest forgotten first).
KNOWN: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
MAX_KNOWN = 256
#: What the gateway answers itself, for the built-in session: reply type and content.
LOCAL_REPLIES: dict[str, tuple[str, dict[str, Any]]] = {
    "comm_info_request": ("comm_info_reply", {"status": "ok", "comms": {}}),
}


async def kernel_info(handler: ChannelsHandler, request: dict[str, Any],
                      content: dict[str, Any]) -> None:
    """The kernel's own answer if it is idle; else, at once, the last one of a kernel of its
    name this gateway relayed (:data:`KNOWN`), or the kernelspec's (then between a busy and
    an idle with this parent, as a kernel's). Before it, the kernel's real state with no
    parent: JupyterLab takes no kernel state from a status whose parent is a
    kernel_info_request."""
    entry = await model.find(handler.ask, handler.user, handler.kernel_id)
    state = model.execution_state(entry)
    if state != "dead":
        handler.status(state)
    if state == "idle" and await _sent(handler, request, mt.KERNEL_INFO_REQUEST, content,
                                       entry):
        return
    name = entry.get("kernel") or DEFAULT
    info = KNOWN.get(name) or spec_of(name, await kernelspecs(handler.ask)).kernel_info()
    handler.kernel_reply(request, mt.KERNEL_INFO_REPLY, info, "shell")
    if state == "dead":  # a start that failed: said after the reply, as a kernel's state
        handler.status(state)


def relayed(handler: ChannelsHandler, msg: dict[str, Any]) -> None:
    """Keep a kernel's own ``kernel_info_reply`` as the one of its kernel's name."""
    if handler.kernel_name is not None and msg["content"].get("status") == "ok":
        KNOWN[handler.kernel_name] = msg["content"]
        KNOWN.move_to_end(handler.kernel_name)
        forget_oldest(KNOWN, MAX_KNOWN)


async def to_kernel(handler: ChannelsHandler, request: dict[str, Any], msg_type: str,
                    content: dict[str, Any]) -> None:
    """A client's comm message or query: the session gets it through the broker (its
    answers come back as the session's output). The built-in session has no comm
    targets, so the gateway answers its comm messages (a ``comm_open`` is closed at
    once), as it does for a refused one, and a query it could not send (no session
    yet, over ``--rate``) gets the reply of a kernel that knows nothing."""
    if await _sent(handler, request, msg_type, content):
        return
    if msg_type == mt.COMM_OPEN:
        handler.kernel_reply(request, mt.COMM_CLOSE, {"comm_id": content.get("comm_id"),
                                                      "data": {}}, "iopub")
    elif msg_type in mt.QUERY_REQUEST_TYPES:
        handler.kernel_reply(request, mt.QUERY_REPLIES[msg_type],
                             unanswered(msg_type, content), "shell")
    elif msg_type in LOCAL_REPLIES:
        handler.kernel_reply(request, *LOCAL_REPLIES[msg_type], "shell")


async def _sent(handler: ChannelsHandler, request: dict[str, Any], msg_type: str,
                content: dict[str, Any], entry: dict[str, Any] | None = None) -> bool:
    """Whether the message went to the session: a query or ``kernel_info`` to any
    session (each counted against ``--rate``), a comm message to a Jupyter kernel's."""
    if handler.kernel_name is None:
        entry = entry or await model.find(handler.ask, handler.user, handler.kernel_id)
        handler.kernel_name = entry.get("kernel") or DEFAULT
    header = wire.client_header(request, handler.client)
    query = msg_type in mt.QUERY_REQUEST_TYPES or msg_type == mt.KERNEL_INFO_REQUEST
    if header is None or not (handler.kernel_name != DEFAULT or query) or (
            query and rate_wait(handler, handler.visitor) is not None):
        return False
    reply = await handler.link.request(msg_type, content, handler.address, header=header,
                                       buffers=request["buffers"])
    if reply["content"].get("ok"):
        return True
    client_log.info((handler.user, msg_type), "gateway: a %s for kernel %s was refused: %s",
                    msg_type, handler.kernel_id, reply["content"].get("error"))
    return False

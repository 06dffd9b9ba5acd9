"""Kernels as the broker sees them: a worksheet named by a UUID with an open session.

Everything here asks the broker (``ask`` is :meth:`gateway.base.BaseHandler.ask`: a refusal
or an absent broker is an HTTP error); nothing about a kernel is kept in this gateway but
the sockets open on it here (:class:`Sockets`), which is what ``connections`` counts.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from protocol import msgtypes as mt
from protocol.kernels import DEFAULT_KERNEL
from protocol.wire import Message

from ..cells import execute_content
from ..errors import fail
from ..guard import Visitor

if TYPE_CHECKING:
    from .channels import ChannelsHandler

Ask = Callable[[str, dict[str, Any], tuple[str, str, str]], Awaitable[Message]]
#: Whose kernels they are on a gateway without ``--auth token`` (everyone's).
ANONYMOUS = "anonymous"
#: The cell a kernel's start runs in (an empty, silent execution that starts its session,
#: so the kernel exists, and is warm, before any client runs code).
START_CELL = "kernel-start"


def owner(visitor: Visitor) -> str:
    return visitor.user or ANONYMOUS


class Sockets:
    """This gateway's open channels sockets, by (user, kernel id)."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, str], set[ChannelsHandler]] = {}

    def add(self, key: tuple[str, str], socket: ChannelsHandler) -> None:
        self.open.setdefault(key, set()).add(socket)

    def discard(self, key: tuple[str, str], socket: ChannelsHandler) -> None:
        group = self.open.get(key)
        if group is not None:
            group.discard(socket)
            if not group:
                del self.open[key]

    def of(self, key: tuple[str, str]) -> list[ChannelsHandler]:
        return list(self.open.get(key, ()))


def iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat().replace(
        "+00:00", "Z")


def execution_state(entry: dict[str, Any]) -> str:
    """As jupyter_server's: ``dead`` for a kernel whose start failed (the broker's entry
    has the ``reason``), which JupyterLab shows as such instead of as usable."""
    running = entry.get("running") or []
    if START_CELL in running:
        return "starting"
    if running:
        return "busy"
    return "dead" if entry.get("reason") is not None else "idle"


def model(entry: dict[str, Any], sockets: Sockets, user: str) -> dict[str, Any]:
    """jupyter_server's kernel model of a broker's kernel entry (with why a dead one is, as
    jupyter_server's ``reason``)."""
    found = {"id": entry["worksheet"], "name": entry.get("kernel") or DEFAULT_KERNEL,
             "last_activity": iso(entry["last_activity"]),
             "execution_state": execution_state(entry),
             "connections": len(sockets.of((user, entry["worksheet"])))}
    if found["execution_state"] == "dead":
        found["reason"] = str(entry["reason"])
    return found


async def entries(ask: Ask, user: str, kernel_id: str | None = None) -> list[dict[str, Any]]:
    content = {} if kernel_id is None else {"worksheet": kernel_id}
    reply = await ask(mt.KERNEL_LIST_REQUEST, content, (user, "-", "-"))
    kernels: list[dict[str, Any]] = reply["content"]["kernels"]
    return kernels


async def find(ask: Ask, user: str, kernel_id: str) -> dict[str, Any]:
    """The kernel's entry; 404 if the user has no such kernel (another user's included)."""
    found = await entries(ask, user, kernel_id)
    if not found:
        raise fail(404, f"no kernel {kernel_id}")
    return found[0]


async def start(ask: Ask, user: str, name: str, kernel_id: str | None = None,
                about: dict[str, str] | None = None) -> str:
    """Start a kernel (its session) and return its id; ``about`` is the Jupyter session's
    path, name and type, kept with the start request (the broker lists it)."""
    kernel_id = kernel_id or str(uuid.uuid4())
    content = {**execute_content(""), "silent": True, "store_history": False}
    if about:
        content["jupyter_session"] = about
    content["kernel"] = name  # issue 21: a worksheet's first evaluate names its kernel
    await ask(mt.EXECUTE_REQUEST, content, (user, kernel_id, START_CELL))
    return kernel_id


async def stop(ask: Ask, user: str, kernel_id: str, *, for_good: bool = False) -> None:
    """End the kernel's session: the kernel is gone (its output stays in the store).
    ``for_good`` (a shutdown, not a restart): every gateway's channels of it are closed
    (:data:`protocol.kernels.SHUT_DOWN`)."""
    await ask(mt.RESTART_REQUEST, {"shutdown": True} if for_good else {},
              (user, kernel_id, START_CELL))


async def interrupt(ask: Ask, user: str, kernel_id: str) -> None:
    """Interrupt what the kernel runs now, as Jupyter does: a cell, or a comm's handler (a
    widget's callback that loops), which is no cell of the broker's."""
    await find(ask, user, kernel_id)
    try:
        await ask(mt.INTERRUPT_REQUEST, {"kernel": True}, (user, kernel_id, START_CELL))
    except Exception as e:  # no session (or device) now: nothing to interrupt, as asked
        if getattr(e, "status_code", None) != 409:
            raise


async def restart(ask: Ask, user: str, kernel_id: str) -> None:
    """End the kernel's session and start a fresh one under the same id; its sockets see
    the new session's ``starting`` and ``idle``. No ``restarting``: to Jupyter clients that
    says the server restarted a kernel that died (JupyterLab then shows "the kernel
    appears to have died"), and a client that asked for a restart knows it."""
    entry = await find(ask, user, kernel_id)
    await stop(ask, user, kernel_id)
    await start(ask, user, entry.get("kernel") or DEFAULT_KERNEL, kernel_id,
                entry.get("jupyter_session"))


async def shut_down(ask: Ask, user: str, kernel_id: str, sockets: Sockets) -> None:
    """End the kernel; its sockets see ``dead`` and are closed, here at once and on every
    other gateway when the broker's ``session_closed`` note
    (:data:`protocol.kernels.SHUT_DOWN`) reaches it."""
    await find(ask, user, kernel_id)
    await stop(ask, user, kernel_id, for_good=True)
    for socket in sockets.of((user, kernel_id)):
        socket.kernel_gone()

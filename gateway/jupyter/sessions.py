"""``/api/sessions``: Jupyter's sessions, each the view of one kernel.

A session is the kernel it started (same id) until a ``PATCH`` names a kernel: then, as
jupyter_server does (JupyterLab's Change Kernel), a kernel of that name starts for the
session and the old one is shut down. The session keeps its id, path, name and type, which
go with the new kernel's start request (``jupyter_session``, with the session's ``id``) and
which the broker lists with the kernel, so every gateway finds the session through its
kernel and none keeps anything of it. A ``PATCH`` to another running kernel by its id
(jupyter_server moves the session there) is a 400: what a session is lives in the start
request of its kernel, which cannot take a second session.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import fail
from . import model
from .bodies import about, kernel_of
from .rest import KERNEL_ID, JupyterHandler


def session_id_of(entry: dict[str, Any]) -> str:
    """The id of the session a kernel entry is the kernel of (its own, unless a PATCH
    started it for a session)."""
    sid = (entry.get("jupyter_session") or {}).get("id")
    return sid if isinstance(sid, str) else str(entry["worksheet"])


async def find_session(handler: JupyterHandler, session_id: str) -> dict[str, Any]:
    """The entry of the session's kernel; 404 if the user has no such session. A session
    is most often its kernel of the same id, asked for alone, before all the user's."""
    found = await model.entries(handler.ask, handler.user, session_id)
    if found and session_id_of(found[0]) == session_id:
        return found[0]
    for entry in await model.entries(handler.ask, handler.user):
        if session_id_of(entry) == session_id:
            return entry
    raise fail(404, f"no session {session_id}")


def session_model(handler: JupyterHandler, entry: dict[str, Any],
                  given: dict[str, str] | None = None) -> dict[str, Any]:
    """jupyter_server's session model of a kernel entry."""
    kernel = model.model(entry, handler.sockets, handler.user)
    kept = {**(entry.get("jupyter_session") or {}), **(given or {})}
    path = kept.get("path", kernel["id"])
    return {"id": session_id_of(entry), "path": path, "name": kept.get("name", ""),
            "type": kept.get("type", "notebook"), "kernel": kernel,
            "notebook": {"path": path, "name": kept.get("name", "")}}


class SessionsHandler(JupyterHandler):
    """The path, name and type given when the session started its kernel are kept with
    the kernel (a session on an existing kernel, or a PATCH of them alone, only echoes
    them)."""

    async def get(self) -> None:
        found = await self.listed()
        self.finish(json.dumps([session_model(self, e) for e in found]))

    async def post(self) -> None:
        body = self.body()
        kernel, given = kernel_of(body), about(body)
        if kernel.get("id") is not None:
            entry = await model.find(self.ask, self.user, kernel["id"])
        else:
            name = await self.kernel_name(kernel)
            self.charge()
            kernel_id = await model.start(self.ask, self.user, name, about=given)
            entry = await model.find(self.ask, self.user, kernel_id)
        self.write_json(201, session_model(self, entry, given))


class SessionHandler(JupyterHandler):
    async def get(self, session_id: str) -> None:
        self.write_json(200, session_model(self, await find_session(self, session_id)))

    async def patch(self, session_id: str) -> None:
        """A kernel name starts a kernel of that name for the session, then shuts the old
        one down (jupyter_server's order); a new path, name or type is echoed."""
        body = self.body()
        kernel, given = kernel_of(body), about(body)
        entry = await find_session(self, session_id)
        if kernel.get("id") is not None:
            if kernel["id"] != entry["worksheet"]:
                raise fail(400, "a session cannot move to another running kernel here; "
                                "PATCH it with a kernel name to start a new kernel for it, "
                                "or start a new session on that kernel (POST /api/sessions)")
        elif kernel.get("name") is not None:
            name = await self.kernel_name(kernel)
            self.charge()
            kept = {**(entry.get("jupyter_session") or {}), **given, "id": session_id}
            started = await model.start(self.ask, self.user, name, about=kept)
            await model.shut_down(self.ask, self.user, entry["worksheet"], self.sockets)
            entry = await model.find(self.ask, self.user, started)
        self.write_json(200, session_model(self, entry, given))

    async def delete(self, session_id: str) -> None:
        self.charge()
        entry = await find_session(self, session_id)
        await model.shut_down(self.ask, self.user, entry["worksheet"], self.sockets)
        self.set_status(204)
        self.finish()


SESSION_ROUTES: list[tuple[str, Any]] = [
    (r"/api/sessions/?", SessionsHandler),
    (rf"/api/sessions/{KERNEL_ID}/?", SessionHandler),
]

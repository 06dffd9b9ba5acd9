"""``DELETE /home/USER/WORKSHEET``: delete the worksheet's stored runs (its requests, their
output, its layout), which frees what they counted against the user's ``--user-output``.

The broker decides and deletes (:mod:`broker.deletion`): 200 ``{"deleted": {"requests": N,
"messages": M}, "finished": [...]}`` (``finished``: the sessions whose deletion an earlier
DELETE began, stopped by a failing store, and this one ended); 409 while a cell of the
worksheet runs or waits (interrupt or wait, then delete); 404 if it has nothing stored. Only
the worksheet's user may, as for its cells: another user's worksheet answers the same 404 as
one with nothing stored. A Jupyter kernel id is a worksheet's name, so ``DELETE
/home/USER/KERNEL_ID`` deletes that kernel's runs; it closes the kernel's session, so the
kernel is gone, and this gateway's channels sockets of it see ``dead`` and are closed, as
after ``DELETE /api/kernels/ID`` (left open, the next cell sent on one brought the kernel
back under its id, in a new session).
It counts against ``--rate`` as a restart does (it closes the worksheet's session too, and
writes the store even when there is nothing to delete).
"""

from __future__ import annotations

from protocol import msgtypes as mt

from .base import BaseHandler, check_address, fail
from .guard import charge, may_use, policy_of
from .jupyter.model import Sockets

#: The cell a deletion names on the bus (every request names one; this one is no cell's).
CELL = "-"


class WorksheetHandler(BaseHandler):
    """``DELETE`` -> ``{"deleted": {"requests", "messages"}}``."""

    async def delete(self, user: str, worksheet: str) -> None:
        address = check_address(user, worksheet, CELL)
        if not may_use(policy_of(self), self.visitor, user):
            raise fail(404, f"worksheet {worksheet} has nothing stored")
        charge(self, self.visitor)
        reply = await self.ask(mt.WORKSHEET_DELETE_REQUEST, {}, address)
        if reply["content"].get("closed"):  # its open session ended: a kernel's, if it is one
            sockets: Sockets = self.settings["jupyter_sockets"]
            for socket in sockets.of((user, worksheet)):
                socket.kernel_gone()
        deleted = reply["content"]["deleted"]
        self.write_json(200, {"deleted": {k: deleted[k] for k in ("requests", "messages")},
                              "finished": list(reply["content"].get("finished") or [])})


ROUTES = [(r"/home/([^/]+)/([^/]+)", WorksheetHandler)]

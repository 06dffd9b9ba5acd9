"""``worksheet_delete_request``: a user deletes a worksheet's stored runs, and with them the
bytes they count against ``--user-output`` (:mod:`broker.budget`).

What goes (:meth:`Store.delete_worksheet`, one transaction where the store has them): the
worksheet's requests (execute and interact), the messages of all its sessions (output, the
echoes of its code, replies), its layout and its Jupyter clients' delivery positions. Its
session records stay, closed, with their seq counters: a seq is never given out twice, so a
client still holding one of the old session's never mistakes new output for old.

A worksheet with a cell running or queued is refused with 409 and nothing is deleted: the
run would go on writing output with nothing to show it, and the user who asked would not
see the output they may still want; interrupt it (or wait), then delete. An open session
that is idle is closed, as a restart closes it (:meth:`Control.close`: its worker is told to
end), right after the deletion: refusing would make every delete a restart then a delete,
and the session holds nothing the user could want once its runs are gone. The worker's
answer to being closed (a reply and a status, a few hundred bytes) is stored after the
deletion, in the closed session; retention removes it with the session's other messages of
no request, and a deletion finding only such messages deletes them but answers 404 (the
worksheet has no runs).

A broker stopped between the store's first write and its last (the messages go a part at a
time after it, see :mod:`broker.store._worksheet_rows`) leaves the worksheet's sessions
marked ``deleting``: no longer open, their messages shown by no view but still counted
against the user. :meth:`Deletion.resume`, at the broker's next start before it serves a
request, ends the deletion of each such session (:meth:`Store.finish_deletion`: its
messages, then it is closed), and of nothing else: runs the worksheet made since, in a
session of their own, stay. The worker of the session that was open is ended when its
device reports it, as the restarted broker ends any worker of a session the store has on
no device (:meth:`broker.devices.DeviceWatch.disown`).

A store that fails after the first write (a later part) leaves the same marks while the
broker runs on: the answer is 503 saying that the runs are deleted but not yet all of their
output, and that a DELETE again finishes it (as the broker's next start does); the open
session is open no more, so its worker is ended now and the worksheet's next evaluate opens
a new session. A store that fails at the first write deleted nothing, as its 503 says.

Afterwards the worksheet is as one never run: ``/update`` of its cells answers 404, its next
evaluate opens a new session; the broker's own memory of it (the cells' views, which
delivery rows it counted) is forgotten, and what the user keeps is read from the store again
at once, so a user past their quota may evaluate right after deleting.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from .budget import StoreBudget
from .cells import Cells
from .control import Control
from .jupyter import JupyterKernels
from .refusal import STORE_RETRY_AFTER, Address, Refused, Reply
from .sessions import OpenSessions
from .store import DELETING, SessionRecord, Store, StoreError


def _busy(worksheet: str, cells: list[str]) -> Refused:
    """The 409 of a worksheet that has runs going on (their cells: ``cells``)."""
    which = f" ({', '.join(sorted(set(cells)))})" if cells else ""
    return Refused(409, f"worksheet {worksheet} has cells running or waiting to run{which}; "
                        "interrupt them or wait until they finish, then delete it; nothing "
                        "was deleted")


class Deletion:
    """The broker's ``worksheet_delete_request`` handler (wired in
    :class:`broker.intake.Intake`, under the worksheet's lock: no request of it is accepted
    meanwhile)."""

    def __init__(self, *, store: Store, sessions: OpenSessions, control: Control,
                 cells: Cells, jupyter: JupyterKernels, budget: StoreBudget,
                 log: logging.Logger | None = None) -> None:
        self.store, self.sessions, self.control = store, sessions, control
        self.cells, self.jupyter, self.budget = cells, jupyter, budget
        self.log = log or logging.getLogger("cellbus.broker")

    async def worksheet(self, msg: Any, address: Address) -> Reply:
        user, worksheet = address[0], address[1]
        session = await self.sessions.find(user, worksheet)
        if session is not None and (unfinished := await self.store.unfinished_requests(
                session.session)):
            raise _busy(worksheet, [r.cell_id for r in unfinished])
        finishing = [r.session for r in await self._begun(user, worksheet)]
        try:
            deleted = await self.store.delete_worksheet(user, worksheet)
        except StoreError as e:
            await self._stopped_mid_way(e, address, session)
            raise  # before its first write: nothing was deleted, as the broker answers
        if deleted is None:  # a run of an older session has not ended yet
            raise _busy(worksheet, [])
        if session is not None:  # after: what its worker answers is not counted as deleted
            await self.control.close(session, address, why="deleting the runs of",
                                     for_good=True)
        self.cells.forget(user, worksheet)
        self.jupyter.forget(user, worksheet)
        # Messages alone are what a closed session's worker said last (see above), no runs
        if not (deleted.requests or deleted.layout or deleted.deliveries or session
                or finishing):
            raise Refused(404, f"worksheet {worksheet} has nothing stored")
        await self.budget.recount(user)
        return {"deleted": {"requests": deleted.requests, "messages": deleted.messages,
                            "layout": deleted.layout, "deliveries": deleted.deliveries},
                "closed": session.session if session else None, "finished": finishing}, []

    async def _begun(self, user: str, worksheet: str) -> list[SessionRecord]:
        """The worksheet's sessions whose deletion an earlier request began and did not end
        (``deleting``): a DELETE now ends it, and says so (``finished``), not 404."""
        return [r for r in await self.store.sessions(DELETING)
                if r.user == user and r.worksheet == worksheet]

    async def _stopped_mid_way(self, error: StoreError, address: Address,
                               session: SessionRecord | None) -> None:
        """If the store failed after the deletion's first write (the worksheet's sessions are
        ``deleting``): the open one is open no more, so its worker is ended and its
        worksheet's next request opens a new one (it stays ``deleting`` in the store, for a
        DELETE again or the broker's next start to finish), and the user is told what was
        deleted (:class:`Refused`, 503); else nothing (the caller's error stands)."""
        user, worksheet = address[0], address[1]
        try:
            begun = await self._begun(user, worksheet)
        except StoreError:
            begun = []
            told = "may be deleted in part"
        else:
            told = "are deleted (their cells show nothing now), but not yet all of their output" \
                if begun else ""
        if not told:
            return
        if session is not None and any(r.session == session.session for r in begun):
            session.state = DELETING
            await self.control.end_worker(session, address, "deleting the runs of")
        self.cells.forget(user, worksheet)
        self.jupyter.forget(user, worksheet)
        self.log.warning("broker: the deletion of the runs of %s/%s stopped after its first "
                         "write: %s", user, worksheet, error)
        raise Refused(503, f"the broker's store failed while deleting: the runs of "
                           f"worksheet {worksheet} {told}; DELETE it again in "
                           f"{STORE_RETRY_AFTER} s to finish (the broker also finishes it at "
                           "its next start)", retry_after=STORE_RETRY_AFTER)

    async def resume(self, log: logging.Logger) -> list[SessionRecord]:
        """End the deletions a broker stopped in the middle of (module docstring); called at
        start, before any request is served. The sessions whose deletion it ended, each on no
        device (for :meth:`broker.senders.Senders.seed`): the worker of the one that was
        open may still run on its device, which is told to end it when it reports it."""
        finished = await self.store.sessions(DELETING)
        for record in finished:
            messages = await self.store.finish_deletion(record.session)
            log.warning("broker: the deletion of the runs of %s/%s was stopped mid-way; "
                        "finished now (%d more messages of session %s)", record.user,
                        record.worksheet, messages, record.session)
            await self.budget.recount(record.user)
        return [dataclasses.replace(record, device=None) for record in finished]

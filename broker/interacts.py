"""Interact requests at the broker: accept, coalesce, and fold each run into its cell.

An ``interact_request`` (``interact_id``, ``values``, ``state``) goes to the worker of the
worksheet's session, like any request, and is persisted first. Requests for one
``(session, interact_id)`` are coalesced (seed 001: "old requests for execution are
overwritten"): at most one is with the device at a time, a newer ``state`` supersedes the
ones still waiting (status ``superseded``), and when the one in flight finishes, only the
newest waiting one is sent. So dragging a slider runs the function for the positions the
worker can keep up with, and always for the last one.

The run's output replaces the interact's previous output in the cell's document: its
messages are folded into a fresh output that the cell's view shows as that interact's.
"""

from __future__ import annotations

from protocol import msgtypes as mt
from protocol.wire import Message, Session

from .budget import StoreBudget, stored_size
from .cells import Cells
from .dispatch import Dispatch
from .interactruns import Run, interact_of
from .refusal import Address, Refused, Reply
from .sessions import OpenSessions
from .store import (INTERACT_REQUEST, NEEDS_WORK, SUPERSEDED, InvalidTransition, Request,
                    Store, UnknownRequest)

#: Longest interact id accepted (the session makes 32-character ones).
MAX_INTERACT_ID = 64


class Interacts:
    """Accepts interact requests, lets one run of each interact go at a time (:meth:`holds`
    is :attr:`Dispatch.hold_back`), and folds each run's output into its cell."""

    def __init__(self, *, wire: Session, store: Store, cells: Cells, sessions: OpenSessions,
                 dispatch: Dispatch, budget: StoreBudget | None = None) -> None:
        self.wire, self.store, self.cells = wire, store, cells
        self.sessions, self.dispatch = sessions, dispatch
        #: Each request (its values) is stored and counts against its user's --user-output.
        self.budget = budget
        self.in_flight: dict[tuple[str, str], str] = {}  # (session, interact_id) -> msg_id
        self.runs: dict[str, Run] = cells.runs  # request msg_id -> its run, not ended

    async def request(self, msg: Message, address: Address) -> Reply:
        content = msg["content"]
        interact_id, values, state = (content.get("interact_id"), content.get("values"),
                                      content.get("state"))
        if not isinstance(interact_id, str) or not 0 < len(interact_id) <= MAX_INTERACT_ID:
            raise Refused(400, "interact_request needs an interact_id")
        if not isinstance(values, dict) or not isinstance(state, int) or isinstance(state, bool):
            raise Refused(400, "interact_request needs values (an object) and an integer state")
        user, worksheet, cell_id = address
        session = await self.sessions.find(user, worksheet)
        cell = await self.cells.for_cell(user, worksheet, cell_id)
        if session is None or cell is None or cell.request.session != session.session:
            raise Refused(404, "no live interact in this cell; evaluate the cell again")
        if not cell.output.shows_interact(interact_id):
            raise Refused(404, f"no interact {interact_id} in cell {cell_id}: its output shows "
                               "none by that id (the cell ran again since, or it is another "
                               "cell's); use an interact_id from the cell's /update")
        forward = self.wire.msg(
            mt.INTERACT_REQUEST, {"interact_id": interact_id, "values": values, "state": state},
            header=msg["header"], metadata={"cellbus": {
                "user": user, "worksheet": worksheet, "cell_id": cell_id,
                "session": session.session, "interact_id": interact_id}})
        size = stored_size(forward)
        if self.budget is not None:
            await self.budget.room(user, size, "interact request")
        request = await self.store.add_request(Request(
            msg_id=msg["msg_id"], session=session.session, user=user, worksheet=worksheet,
            cell_id=cell_id, msg_type=INTERACT_REQUEST, input="", message=forward,
            device=session.device, interact_id=interact_id, state=state))
        if self.budget is not None:
            self.budget.add(user, size)
        self.runs[request.msg_id] = Run(cell.request.msg_id, interact_id)
        superseded = await self.supersede_waiting(session.session, interact_id, state)
        await self.send_next(session.session, interact_id)
        return {"cell_id": cell_id, "status": request.status, "msg_id": request.msg_id,
                "superseded": superseded}, []

    async def _waiting(self, session: str, interact_id: str) -> list[Request]:
        """Runs of this interact not yet handed to a device (the one in flight is not)."""
        flying = self.in_flight.get((session, interact_id))
        return [r for r in await self.store.requests(NEEDS_WORK)
                if r.msg_type == INTERACT_REQUEST and r.session == session
                and r.interact_id == interact_id and r.msg_id != flying
                and r.msg_id not in self.dispatch.handed]

    async def supersede_waiting(self, session: str, interact_id: str, state: int) -> int:
        """Mark waiting runs with a lower state superseded; they will never run.

        Two paths get here at once (a new request, under its worksheet's lock, and the end
        of the run before, in the broker's device loop): a run the other one superseded
        meanwhile is skipped, not an error that would stop the loop."""
        count = 0
        key = (session, interact_id)
        handed = self.dispatch.handed
        for request in await self._waiting(session, interact_id):
            if (request.state or 0) < state:
                if request.msg_id in handed or self.in_flight.get(key) == request.msg_id:
                    continue  # the other path sent it meanwhile: it runs
                try:
                    await self.store.update_request(request.msg_id, SUPERSEDED)
                except (InvalidTransition, UnknownRequest):
                    continue  # superseded (or started) by the other path
                self.forget([request.msg_id])
                count += 1
        return count

    def holds(self, request: Request) -> bool:
        """Whether ``request`` must wait: another run of its interact is with the device."""
        if request.msg_type != INTERACT_REQUEST or request.interact_id is None:
            return False
        running = self.in_flight.get((request.session, request.interact_id))
        return running is not None and running != request.msg_id

    async def send_next(self, session: str, interact_id: str) -> None:
        """Send the newest waiting run of this interact if none is with the device."""
        key = (session, interact_id)
        if key in self.in_flight:
            return
        waiting = await self._waiting(session, interact_id)
        if not waiting or key in self.in_flight:
            return
        newest = max(waiting, key=lambda r: r.state or 0)
        self.in_flight[key] = newest.msg_id  # from here on, nothing supersedes it
        if not await self.dispatch.send(newest):
            del self.in_flight[key]  # no device now: placed when one registers
            return
        await self.supersede_waiting(session, interact_id, newest.state or 0)

    async def finished(self, request: Request) -> None:
        """A run ended (done or error): let the next one go."""
        if request.interact_id is None:
            return
        key = (request.session, request.interact_id)
        if self.in_flight.get(key) == request.msg_id:
            del self.in_flight[key]
        await self.send_next(*key)

    def apply(self, parent: str, seq: int, msg: Message) -> bool:
        """Fold a message of an interact run; True if ``parent`` is one. A run this broker
        did not accept (a previous one did, and sent it before it went) is known by its
        message, and shows in its cell's view if that is at hand."""
        run = self.runs.get(parent)
        if run is None:
            if (interact_id := interact_of(msg)) is None:
                return False
            run = self.runs[parent] = Run("", interact_id)
        if not run.cell_msg_id:
            facts = msg["metadata"]["cellbus"]
            run.cell_msg_id = self.cells.latest.get(
                (facts.get("user"), facts.get("worksheet"), facts.get("cell_id"))) or ""
        self.cells.run_output(seq, msg)  # for a view being folded from the store now
        view = self.cells.cached(run.cell_msg_id)
        run.apply(seq, msg, view.output if view is not None else None)
        if msg["msg_type"] == mt.STATUS and msg["content"].get("execution_state") == "idle":
            del self.runs[parent]  # the run is over; the view keeps its output
        return True

    def forget(self, msg_ids: list[str]) -> None:
        for msg_id in msg_ids:
            self.runs.pop(msg_id, None)

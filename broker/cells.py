"""What the broker knows about cells: each request's folded output, kept warm in memory.

A cell's document (the seed's ``/update`` answer) is its latest request plus the fold of that
request's output messages. Views of recent requests stay in memory and are updated as each
message is persisted; any other view is rebuilt from the store on demand. While a view is being
rebuilt, messages that arrive are queued and applied after, so none is lost in the gap, and so
is a status change (:meth:`Cells.refresh`).

The views kept are bounded in number and in bytes (the output folded into them, as
:func:`~broker.outputcap.message_size` counts it): a flooded cell's view is as big as its output,
so a count alone let 2,048 of them hold gigabytes. The least recently used go first; the
newest is kept whatever its size.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from typing import Any

from protocol.counts import counted
from protocol.fold import CellOutput
from protocol.wire import Message

from .interactruns import Run, RunFold, fold_runs, of_cell
from .outputcap import message_size
from .store import Progress, Request, Store

#: Request views kept in memory; older ones are rebuilt from the store when asked for.
VIEW_CACHE = 2048
#: Bytes of output those views may hold in all.
VIEW_BYTES = 16 * 2**20
CellAddress = tuple[str, str, str]


@dataclass
class CellView:
    request: Request
    output: CellOutput = field(default_factory=CellOutput)
    #: Bytes of the messages folded into ``output`` (see the module docstring).
    size: int = 0

    def document(self, since: int = 0, session: str | None = None) -> dict[str, Any]:
        """The ``/update`` document: everything changed after ``since``, whole blocks.

        Seqs count per session, so after a restart of the worksheet they start again at 1.
        A ``since`` beyond anything this request has, or a ``session`` other than its own,
        is from another session: the client gets every block with ``reset: true`` (replace
        what you show), never a silent empty answer.
        """
        req = self.request
        high = max(self.output.seq, self.output.changed)
        stale = since > high or (session is not None and session != req.session)
        if stale:
            since = 0
        return {
            "cell_id": req.cell_id,
            "status": req.status,
            "input": req.input,
            "seq": max(high, since),
            "output": self.output.blocks(since),
            "reset": stale or self.output.reset_after(since),
            "session": req.session,
            "request": req.msg_id,
            "usage": self.output.usage,
            "execution_count": self.output.execution_count if counted(req.input) else None,
            # Not run (its status is "error"): a cell queued before it failed (stop_on_error).
            "aborted": self.output.aborted,
        }


def _newer(stored: Request | Progress, request: Request) -> Request:
    """``request`` as ``stored`` (the same request, stored since) leaves it."""
    return stored if isinstance(stored, Request) else stored.applied(request)


class Cells:
    def __init__(self, store: Store, capacity: int = VIEW_CACHE,
                 max_bytes: int = VIEW_BYTES) -> None:
        self.store = store
        self.capacity = capacity
        self.max_bytes = max_bytes
        #: Bytes of all the views kept.
        self.bytes = 0
        self.views: collections.OrderedDict[str, CellView] = collections.OrderedDict()
        self.latest: collections.OrderedDict[CellAddress, str] = collections.OrderedDict()
        self._loading: dict[str, list[tuple[int, Message]]] = {}
        #: Status changes while loading.
        self._late_requests: dict[str, Request | Progress] = {}
        #: Output of the runs of a loading view's interacts stored while it loads
        #: (:meth:`run_output`), by the view's request.
        self._late_runs: dict[str, tuple[Request, list[tuple[int, Message]]]] = {}
        self._load_done: dict[str, asyncio.Event] = {}
        #: Interact runs not ended, by request msg_id (broker/interactruns.py): the ones
        #: broker/interacts.py folds as their output is stored, and the ones a view folded
        #: from the store found, which go on from there.
        self.runs: dict[str, Run] = {}

    def track(self, request: Request) -> CellView:
        """A new request: it becomes its cell's latest, with an empty output."""
        view = CellView(request)
        self._keep(view)
        self._remember(self.latest, (request.user, request.worksheet, request.cell_id),
                       request.msg_id)
        return view

    def cached(self, msg_id: str) -> CellView | None:
        return self.views.get(msg_id)

    def refresh(self, stored: Request | Progress) -> None:
        """A request as just stored (a new status), or its progress: into its view, in
        memory or being rebuilt (where the request the rebuild began with is older)."""
        if stored.msg_id in self._loading:
            self._late_requests[stored.msg_id] = stored
        elif (view := self.views.get(stored.msg_id)) is not None:
            view.request = _newer(stored, view.request)

    def apply(self, parent: str, seq: int, msg: Message) -> None:
        """Fold a persisted message into its request's view, if that view is in memory."""
        if parent in self._loading:
            self._loading[parent].append((seq, msg))
        elif (view := self.views.get(parent)) is not None:
            view.output.apply(seq, msg)
            size = message_size(msg)
            view.size += size
            self.bytes += size
            self._evict()

    def run_output(self, seq: int, msg: Message) -> None:
        """An interact run's message, just stored: each view being folded from the store
        folds it too, if the run is of its cell (its read may have missed it)."""
        for request, late in self._late_runs.values():
            if of_cell(msg, request) is not None:
                late.append((seq, msg))

    async def for_cell(self, user: str, worksheet: str, cell_id: str) -> CellView | None:
        msg_id = self.latest.get((user, worksheet, cell_id))
        if msg_id is not None and msg_id in self.views:
            return self.views[msg_id]
        request = await self.store.cell_request(user, worksheet, cell_id)
        if request is None:
            return None
        view = await self.view(request)
        if (user, worksheet, cell_id) not in self.latest:  # else a newer one came meanwhile
            self._remember(self.latest, (user, worksheet, cell_id), request.msg_id)
        return view

    async def view(self, request: Request) -> CellView:
        """The view of ``request``, folded from the store if it is not in memory."""
        if (view := self.views.get(request.msg_id)) is not None:
            return view
        while (done := self._load_done.get(request.msg_id)) is not None:
            await done.wait()
            if (view := self.views.get(request.msg_id)) is not None:
                return view  # else forgotten already (see _evict): load it again
        self._loading[request.msg_id] = []
        self._late_runs[request.msg_id] = (request, [])
        self._load_done[request.msg_id] = asyncio.Event()
        view = CellView(request)
        runs = RunFold(request, view.output)
        try:
            for seq, msg in await self.store.messages(request.session, parent=request.msg_id):
                view.output.apply(seq, msg)
                view.size += message_size(msg)
            await fold_runs(self.store, runs)
            # ``request`` was read before this load began: a status stored since is in the
            # store now, and refresh() notes any stored after this read
            view.request = await self.store.get_request(request.msg_id) or request
        finally:
            if (stored := self._late_requests.pop(request.msg_id, None)) is not None:
                view.request = _newer(stored, view.request)
            late = self._loading.pop(request.msg_id)
            for seq, msg in sorted(late, key=lambda item: item[0]):
                view.output.apply(seq, msg)
                view.size += message_size(msg)
            for seq, msg in sorted(self._late_runs.pop(request.msg_id)[1], key=lambda i: i[0]):
                runs.apply(seq, msg)
            runs.install(self.runs)
            view.size += runs.size
            self._keep(view)
            self._load_done.pop(request.msg_id).set()
        return view

    def forget(self, user: str, worksheet: str) -> None:
        """The worksheet's runs were deleted from the store (broker/deletion.py): its cells
        have no latest request, and no view of its requests is kept."""
        for key in [k for k in self.latest if k[:2] == (user, worksheet)]:
            del self.latest[key]
        for msg_id, view in list(self.views.items()):
            if (view.request.user, view.request.worksheet) == (user, worksheet):
                del self.views[msg_id]
                self.bytes -= view.size

    def _keep(self, view: CellView) -> None:
        """Keep ``view`` as the newest view."""
        old = self.views.pop(view.request.msg_id, None)
        if old is not None:
            self.bytes -= old.size
        self.views[view.request.msg_id] = view
        self.bytes += view.size
        self._evict()

    def _evict(self) -> None:
        """Forget the oldest views past either bound, but never the last one."""
        while len(self.views) > 1 and (len(self.views) > self.capacity
                                       or self.bytes > self.max_bytes):
            _, gone = self.views.popitem(last=False)
            self.bytes -= gone.size

    def _remember(self, table: collections.OrderedDict[Any, Any], key: Any, value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self.capacity:
            table.popitem(last=False)

"""Interact runs in their cell's document: from its first visible change on, a run's output
replaces its interact's output (seed 001: "its output replaces the old output").

The broker applies this rule as each message is stored (:class:`Run`, from
:meth:`broker.interacts.Interacts.apply`), and again when it folds a cell's view from the
store (:class:`RunFold`: after a restart, or once the view left the cache). Before, a view
folded from the store held only the messages of the cell's own run, so a restarted broker
showed every slider's output as the cell's run had left it, whatever ran after; and a run
that a previous broker had sent, whose output came to the new one, was shown nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol import msgtypes as mt
from protocol.fold import CellOutput
from protocol.wire import Message

from .outputcap import message_size
from .store import Request, Store


@dataclass
class Run:
    """One run of an interact: the output it folded, and whether that shows yet."""

    cell_msg_id: str  # the request of the cell the interact is in ("" if not known yet)
    interact_id: str
    inner: CellOutput = field(default_factory=CellOutput)
    visible: bool = False  # it changed the output, or its reply says it ran
    shown: bool = False  # and that is the interact's output in the cell's view

    def apply(self, seq: int, msg: Message, output: CellOutput | None) -> None:
        """Fold ``msg``; from the run's first visible change (or a reply that ran it) on,
        its output is the interact's in ``output``, the cell's, once its view is at hand
        (a view being folded from the store is not yet)."""
        changed = self.inner.apply(seq, msg)
        ran = msg["msg_type"] == mt.INTERACT_REPLY and not msg["content"].get("ignored")
        self.visible = self.visible or changed or ran
        if self.visible and not self.shown and output is not None:
            self.shown = output.replace_interact_output(self.interact_id, seq, self.inner)


def interact_of(msg: Message) -> str | None:
    """The interact whose run ``msg`` is output of, or None if it is no run's output."""
    facts = msg["metadata"].get("cellbus")
    interact_id = facts.get("interact_id") if isinstance(facts, dict) else None
    if msg["parent_header"].get("msg_type") != mt.INTERACT_REQUEST or \
            not isinstance(interact_id, str):
        return None
    return interact_id


def of_cell(msg: Message, request: Request) -> str | None:
    """The interact whose run ``msg`` is output of, if that run is of ``request``'s cell."""
    interact_id = interact_of(msg)
    facts = msg["metadata"]["cellbus"] if interact_id is not None else {}
    if (facts.get("user"), facts.get("worksheet"), facts.get("cell_id")) != \
            (request.user, request.worksheet, request.cell_id):
        return None
    return interact_id


class RunFold:
    """The runs of one cell's interacts, folded into that cell's view (``output``, of
    ``request``) as it is folded from the store: the stored runs (:func:`fold_runs`), then what
    was stored of them while the view was being folded (:meth:`apply`, the broker's
    ``Cells`` collects it), then :meth:`install` puts those still going in ``runs``.

    Every run is folded afresh here, from its first message on: a run object the broker
    already had may hold only the messages it saw (a run that a broker which died began,
    whose next line came live while the view was read), and folding the stored messages
    into it skipped each one older than its newest (seqs only go up), so the view showed
    the live line alone."""

    def __init__(self, request: Request, output: CellOutput) -> None:
        self.request, self.output = request, output
        self.folded: dict[str, Run] = {}
        self.ended: set[str] = set()
        self.size = 0

    def apply(self, seq: int, msg: Message) -> None:
        """Fold ``msg`` if it is output of a run of this cell's interacts."""
        parent = msg["parent_header"].get("msg_id")
        if not isinstance(parent, str) or (interact_id := of_cell(msg, self.request)) is None:
            return
        if (run := self.folded.get(parent)) is None:
            run = self.folded[parent] = Run(self.request.msg_id, interact_id)
        if seq > run.inner.seq:
            self.size += message_size(msg)
        run.apply(seq, msg, self.output)
        if _ends(msg):
            self.ended.add(parent)

    def install(self, runs: dict[str, Run]) -> None:
        """Put the runs this view shows that did not end in ``runs``, in place of any the
        broker had: their output still to come goes on from here."""
        for parent, run in self.folded.items():
            if parent in self.ended:
                runs.pop(parent, None)
            elif self.output.shows_interact(run.interact_id):
                runs[parent] = run


#: Runs read from the store at a time, newest first, looking for an interact's last one.
PAGE = 16


async def fold_runs(store: Store, fold: RunFold) -> None:
    """Fold into ``fold`` the stored runs of its cell's interacts that still show.

    A run's output replaces everything its interact showed before, so only each interact's
    last run that showed and ended is read, with the runs after it (still going, or that
    showed nothing yet), and the same for the interacts those runs' output holds: the
    interacts' runs, newest first, from the store's index (:meth:`Store.interact_runs`),
    not the session's history since the cell ran, which grows with every cell run after it.
    """
    request = fold.request
    todo = [b["interact_id"] for b in fold.output.blocks().values() if b["type"] == "interact"]
    seen = set(todo)
    found: list[tuple[int, Message]] = []
    while todo:
        for messages in await _last_runs(store, request, todo.pop()):
            for _, msg in messages:
                nested = msg["content"].get("interact_id")
                if msg["msg_type"] == mt.INTERACT_START and isinstance(nested, str) and \
                        nested not in seen:
                    seen.add(nested)
                    todo.append(nested)
            found += messages
    for seq, msg in sorted(found, key=lambda item: item[0]):
        fold.apply(seq, msg)


async def _last_runs(store: Store, request: Request,
                     interact_id: str) -> list[list[tuple[int, Message]]]:
    """The stored output of the runs of ``interact_id`` (in ``request``'s cell) that show:
    its last run that showed and ended, and the runs after it; newest first."""
    shown: list[list[tuple[int, Message]]] = []
    before: str | None = None
    while True:
        page = await store.interact_runs(request.session, interact_id, after=request.msg_id,
                                         before=before, limit=PAGE)
        for run in page:
            messages = [(seq, msg) for seq, msg in await store.messages(
                request.session, parent=run.msg_id) if of_cell(msg, request) == interact_id]
            if not messages:
                continue  # superseded, or not sent yet: no output
            shown.append(messages)
            probe = Run(request.msg_id, interact_id)
            for seq, msg in messages:
                probe.apply(seq, msg, None)
            if probe.visible and any(_ends(msg) for _, msg in messages):
                return shown
        if len(page) < PAGE:
            return shown
        before = page[-1].msg_id


def _ends(msg: Message) -> bool:
    return msg["msg_type"] == mt.STATUS and msg["content"].get("execution_state") == "idle"

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
    ``request``) as it is folded from the store: the stored runs (:meth:`read`), then what
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
        if msg["msg_type"] == mt.STATUS and msg["content"].get("execution_state") == "idle":
            self.ended.add(parent)

    def install(self, runs: dict[str, Run]) -> None:
        """Put the runs this view shows that did not end in ``runs``, in place of any the
        broker had: their output still to come goes on from here."""
        for parent, run in self.folded.items():
            if parent in self.ended:
                runs.pop(parent, None)
            elif self.output.shows_interact(run.interact_id):
                runs[parent] = run


async def fold_runs(store: Store, fold: RunFold, first: int) -> None:
    """Fold into ``fold`` the stored runs of its cell's interacts (they come after the
    cell's first message, seq ``first``); none if its output shows no interact."""
    if not any(b["type"] == "interact" for b in fold.output.blocks().values()):
        return
    for seq, msg in await store.messages(fold.request.session, since=max(0, first - 1)):
        fold.apply(seq, msg)

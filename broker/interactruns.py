"""Interact runs in their cell's document: from its first visible change on, a run's output
replaces its interact's output (seed 001: "its output replaces the old output").

The broker applies this rule as each message is stored (:class:`Run`, from
:meth:`broker.interacts.Interacts.apply`), and again when it folds a cell's view from the
store (:func:`fold_runs`: after a restart, or once the view left the cache). Before, a view
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


async def fold_runs(store: Store, request: Request, output: CellOutput,
                    runs: dict[str, Run], first: int) -> int:
    """Fold into ``output`` (of ``request``, folded from the store just now; its first
    message has seq ``first``) the stored runs of its interacts, in seq order; returns the
    bytes of the messages folded. A run in
    ``runs`` (not ended) is folded on and shown in this view; a run found here that did not
    end is put there, so that its output still to come goes on from what is stored (a run
    that a broker which died began)."""
    if not any(b["type"] == "interact" for b in output.blocks().values()):
        return 0
    folded: dict[str, Run] = {}
    ended: set[str] = set()
    size = 0
    for seq, msg in await store.messages(request.session, since=max(0, first - 1)):
        parent = msg["parent_header"].get("msg_id")
        if not isinstance(parent, str) or (interact_id := interact_of(msg)) is None:
            continue
        if (run := folded.get(parent)) is None:
            run = folded[parent] = runs.get(parent) or Run(request.msg_id, interact_id)
            run.cell_msg_id, run.shown = request.msg_id, False  # to be shown in this view
        run.apply(seq, msg, output)
        size += message_size(msg)
        if msg["msg_type"] == mt.STATUS and msg["content"].get("execution_state") == "idle":
            ended.add(parent)
    for parent, run in folded.items():
        if parent not in ended:
            runs.setdefault(parent, run)
    return size

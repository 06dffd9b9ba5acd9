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


#: Runs read from the store at a time, newest first, looking for an interact's last one.
PAGE = 16


async def fold_runs(store: Store, request: Request, output: CellOutput,
                    runs: dict[str, Run]) -> int:
    """Fold into ``output`` (of ``request``, folded from the store just now) the stored runs
    of its interacts that still show, in seq order; returns the bytes of the messages folded.

    A run's output replaces everything its interact showed before, so only each interact's
    last run that showed and ended is read, with the runs after it (still going, or that
    showed nothing yet), and the same for the interacts those runs' output holds: the
    interacts' runs, newest first, from the store's index (:meth:`Store.interact_runs`), not
    the session's history since the cell ran, which grows with every cell run after it. A run
    in ``runs`` (not ended) is folded on and shown in this view; a run found here that did
    not end is put there, so that its output still to come goes on from what is stored (a run
    that a broker which died began)."""
    todo = [b["interact_id"] for b in output.blocks().values() if b["type"] == "interact"]
    seen, ended = set(todo), set()
    found: list[tuple[int, Message]] = []
    while todo:
        for messages in await _last_runs(store, request, todo.pop()):
            for _, msg in messages:
                nested = msg["content"].get("interact_id")
                if msg["msg_type"] == mt.INTERACT_START and isinstance(nested, str) and \
                        nested not in seen:
                    seen.add(nested)
                    todo.append(nested)
                if _ends(msg):
                    ended.add(msg["parent_header"]["msg_id"])
            found += messages
    folded: dict[str, Run] = {}
    size = 0
    for seq, msg in sorted(found, key=lambda item: item[0]):
        parent, interact_id = msg["parent_header"]["msg_id"], interact_of(msg)
        assert interact_id is not None  # _last_runs keeps only runs' output
        if (run := folded.get(parent)) is None:
            run = folded[parent] = runs.get(parent) or Run(request.msg_id, interact_id)
            run.cell_msg_id, run.shown = request.msg_id, False  # to be shown in this view
        run.apply(seq, msg, output)
        size += message_size(msg)
    for parent, run in folded.items():
        if parent not in ended:
            runs.setdefault(parent, run)
    return size


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
                request.session, parent=run.msg_id) if interact_of(msg) == interact_id]
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

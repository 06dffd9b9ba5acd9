"""Retention: the message logs of finished sessions, compacted down to each cell's output.

The same on every backend: this module decides *what* to remove or rewrite (a
:class:`SessionPlan`), each backend only applies it (``Store.apply_compaction``).

A session is *finished* when it has no ``needs_work`` or ``working`` request and both its
last activity and its last message are older than the retention period (see
``Store.finished_sessions``). Compacting it keeps what ``GET .../update?since=0`` shows for
each of its cells, and nothing else:

- **Kept requests.** A cell's latest ``execute_request`` (if it is in this session), and for
  each interact the latest finished run, whose output the browser shows. Every other
  request of the session that has ended (an earlier evaluation of a cell, a superseded
  interact run) is deleted with its messages, and so are messages that answer no stored
  request (shutdown and interrupt replies).
- **Kept messages.** A kept request's messages are folded (:mod:`protocol.fold`) and reduced
  to messages that fold to exactly the same blocks, block ids, block seqs and clear points:
  messages that change nothing visible (``status: busy``, ``execute_input``) are dropped; a
  run of stream messages into one block becomes one message, stored at the seq of the first
  one of the run (where its block began); output that a later ``clear_output`` removed
  becomes a tiny placeholder (so the blocks after it keep their ids). The reduction is
  checked by folding both lists; if they differ in anything, a less compact one is tried,
  and at worst the request's messages are left as they are.

Seqs are never reused or renumbered: a rewritten message stays at a seq it already had, and
the session's seq counter is not touched, so later messages go on from where it was. A file
a kept cell shows stays at its seq, so its URL keeps working.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from protocol.fold import CellOutput, fold

from .errors import StoreError
from .records import DONE, ERROR, EXECUTE_REQUEST, FINAL, INTERACT_REQUEST, Request

if TYPE_CHECKING:
    from .base import Store

Message = dict[str, Any]
Seqd = tuple[int, Message]

#: Sessions planned per call of ``Store.finished_sessions`` in one compaction pass.
SESSIONS_PER_BATCH: Final = 100
#: Failures kept in :attr:`CompactionStats.errors` for the log line.
MAX_ERRORS: Final = 5
#: Message types that can change a cell's output (everything else is dropped when compacted).
_VISIBLE: Final = frozenset({"stream", "display_data", "update_display_data", "execute_result",
                             "error",
                             "clear_output", "interact_start", "interact_end",
                             "execute_reply", "interact_reply"})
#: What a placeholder shows: an empty text block, which a later clear_output removes anyway.
_PLACEHOLDER: Final = {"data": {"text/plain": ""}, "metadata": {}}


@dataclass
class SessionPlan:
    """What compacting one session changes. Backends apply it as it is (in any number of
    transactions: every step is safe to repeat, and a crash between steps leaves a log
    that folds to the same output)."""

    session: str
    #: The session's last seq when it was planned: nothing above it is touched.
    through: int
    #: Seqs of kept requests' messages to delete.
    delete: list[int] = field(default_factory=list)
    #: seq -> the message stored at that seq from now on.
    rewrite: dict[int, Message] = field(default_factory=dict)
    #: Ended requests to delete; after that, every message at or below ``through`` whose
    #: parent is not a request of this session is deleted too.
    drop_requests: list[str] = field(default_factory=list)


@dataclass
class CompactionStats:
    """What compaction did, for the broker's log line."""

    sessions: int = 0
    messages_removed: int = 0
    messages_rewritten: int = 0
    requests_removed: int = 0
    #: Bytes of stored (packed) messages and requests freed.
    bytes_freed: int = 0
    #: Sessions whose compaction failed (left as they were), and why (the first few).
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: CompactionStats) -> None:
        self.sessions += other.sessions
        self.messages_removed += other.messages_removed
        self.messages_rewritten += other.messages_rewritten
        self.requests_removed += other.requests_removed
        self.bytes_freed += other.bytes_freed
        self.failed += other.failed
        self.errors += other.errors


# -- the pass ---------------------------------------------------------------------------------


async def compact(store: Store, older_than: float, *,
                  batch: int = SESSIONS_PER_BATCH) -> CompactionStats:
    """Compact every session that finished before ``older_than`` (a ``time.time()``).

    A session whose compaction fails (:class:`StoreError`) is counted in ``failed``, left
    as it was, and tried again by the next pass; the others go on.
    """
    stats = CompactionStats()
    failed: set[str] = set()
    while True:
        finished = await store.finished_sessions(older_than, limit=batch + len(failed))
        todo = [(session, through) for session, through in finished if session not in failed]
        for session, through in todo:
            try:
                stats.add(await store.apply_compaction(
                    await plan_session(store, session, through)))
            except StoreError as e:
                failed.add(session)
                stats.failed += 1
                if len(stats.errors) < MAX_ERRORS:
                    stats.errors.append(f"session {session}: {e}")
        if not todo or len(finished) < batch + len(failed):
            return stats


async def plan_session(store: Store, session: str, through: int) -> SessionPlan:
    """The plan for one finished session whose last seq is ``through``."""
    requests = await store.session_requests(session)
    kept = await kept_requests(store, requests)
    plan = SessionPlan(session, through, drop_requests=[
        r.msg_id for r in requests if r.msg_id not in kept and r.status in FINAL])
    for msg_id in kept:
        run = [(seq, msg) for seq, msg in await store.messages(session, parent=msg_id)
               if seq <= through]
        delete, rewrite = reduce_run(run)
        plan.delete += delete
        plan.rewrite.update(rewrite)
    return plan


async def kept_requests(store: Store, requests: Sequence[Request]) -> set[str]:
    """msg_ids of the requests whose output is shown: each cell's latest evaluation (if it is
    one of ``requests``) and the latest finished run of each interact shown after it."""
    kept: dict[tuple[str, str, str], Request] = {}
    asked: set[tuple[str, str, str]] = set()
    for request in requests:
        cell = (request.user, request.worksheet, request.cell_id)
        if request.msg_type == EXECUTE_REQUEST and cell not in asked:
            asked.add(cell)
            latest = await store.cell_request(*cell)
            if latest is not None and latest.session == request.session:
                kept[cell] = latest
    runs: dict[str, Request] = {}
    # Insertion order (the stores list requests so), not ``created``: a wall clock that
    # stepped back stamped a later run earlier than its cell's.
    place = {r.msg_id: n for n, r in enumerate(requests)}
    for n, request in enumerate(requests):  # the last finished run of an interact wins
        cell_request = kept.get((request.user, request.worksheet, request.cell_id))
        if (request.msg_type == INTERACT_REQUEST and request.interact_id is not None
                and request.status in (DONE, ERROR) and cell_request is not None
                and n >= place.get(cell_request.msg_id, 0)):
            runs[request.interact_id] = request
    return {r.msg_id for r in kept.values()} | {r.msg_id for r in runs.values()}


# -- one request's messages -------------------------------------------------------------------


def reduce_run(run: Sequence[Seqd]) -> tuple[list[int], dict[int, Message]]:
    """``(seqs to delete, seq -> new message)`` for one request's messages in seq order;
    nothing (``([], {})``) unless the reduced messages fold exactly like ``run``.

    Variants are tried from the most compact down (placeholders for cleared output or not;
    a merged stream run at the seq of its first message, which closes the block before it
    there, or of its last) and the first that folds the same is taken.
    """
    if len(run) < 2:
        return [], {}
    original = dict(run)
    folded = fold(run)
    reset = max((seq for seq, _ in run if folded.reset_after(seq - 1)), default=0)
    for placeholders, at_first in ((True, True), (True, False), (False, True), (False, False)):
        reduced = _reduce(run, reset if placeholders else 0, at_first)
        rewrite = {seq: msg for seq, msg in reduced if msg is not original[seq]}
        if (len(reduced) < len(run) or rewrite) and _same(folded, run, reduced):
            kept = {seq for seq, _ in reduced}
            return [seq for seq, _ in run if seq not in kept], rewrite
    return [], {}


def same_output(a: Sequence[Seqd], b: Sequence[Seqd]) -> bool:
    """True if both message lists fold to the same cell output, whatever ``since`` a client
    asks with: the same blocks (ids, content, seqs), last seq, and points of reset."""
    return _same(fold(a), a, b)


def _same(x: CellOutput, a: Sequence[Seqd], b: Sequence[Seqd]) -> bool:
    y = fold(b)
    if x.seq != y.seq or x.changed != y.changed or x.blocks() != y.blocks():
        return False
    return all(x.reset_after(seq) == y.reset_after(seq) for seq, _ in a)


def _reduce(run: Sequence[Seqd], reset: int, at_first: bool) -> list[Seqd]:
    """Noise dropped, stream runs merged, and (if ``reset``, the seq at which the fold last
    removed blocks) placeholders for what was removed."""
    last_seq = run[-1][0]
    kept = [(seq, msg) for seq, msg in run if seq == last_seq or _visible(msg)]
    merged = _merge_streams(kept, at_first)
    return _placeholders_before(merged, reset) if reset else merged


def _msg_type(msg: Message) -> str | None:
    kind = msg.get("msg_type")
    if not isinstance(kind, str):
        header = msg.get("header")
        kind = header.get("msg_type") if isinstance(header, dict) else None
    return kind if isinstance(kind, str) else None


def _content(msg: Message) -> dict[str, Any]:
    content = msg.get("content")
    return content if isinstance(content, dict) else {}


def _visible(msg: Message) -> bool:
    kind = _msg_type(msg)
    if kind == "status":
        return _content(msg).get("execution_state") == "idle"
    return kind in _VISIBLE


def _stream_name(msg: Message) -> str | None:
    """The stream a valid stream message writes to, else None."""
    content = _content(msg)
    if _msg_type(msg) != "stream" or not isinstance(content.get("text"), str):
        return None
    name = content.get("name")
    return name if isinstance(name, str) else None


def _merge_streams(run: list[Seqd], at_first: bool) -> list[Seqd]:
    """Each run of consecutive stream messages to one stream becomes one message with the
    run's text, at the seq (and with the header) of the run's first or last message."""
    out: list[Seqd] = []
    group: list[Seqd] = []

    def flush() -> None:
        if len(group) == 1:
            out.append(group[0])
        elif group:
            seq, base = group[0] if at_first else group[-1]
            merged = dict(base, content=dict(_content(base), text="".join(
                _content(m)["text"] for _, m in group)))
            out.append((seq, merged))
        group.clear()

    for seq, msg in run:
        name = _stream_name(msg)
        if name is None or (group and _stream_name(group[0][1]) != name):
            flush()
        if name is None:
            out.append((seq, msg))
        else:
            group.append((seq, msg))
    flush()
    return out


def _placeholders_before(run: list[Seqd], reset: int) -> list[Seqd]:
    """Before the clear_output that last removed blocks (at seq ``reset``, or later for a
    ``wait`` clear), each message that adds a block becomes a placeholder, so the blocks
    after keep their ids, and every other message goes. Not for runs with interacts, whose
    output nests."""
    kinds = [_msg_type(m) for _, m in run]
    clears = [i for i, (seq, _) in enumerate(run) if kinds[i] == "clear_output" and seq <= reset]
    if "interact_start" in kinds or not clears:
        return run
    out: list[Seqd] = []
    for seq, msg in run[:clears[-1]]:
        if fold([(1, msg)]).blocks():  # it adds a block
            out.append((seq, msg if _is_placeholder(msg) else _placeholder(msg)))
    return out + run[clears[-1]:]


def _is_placeholder(msg: Message) -> bool:
    return _msg_type(msg) == "display_data" and msg.get("content") == _PLACEHOLDER


def _placeholder(msg: Message) -> Message:
    """``msg`` as an empty display_data: same header ids and routing facts, no payload."""
    header = dict(msg["header"]) if isinstance(msg.get("header"), dict) else {}
    header["msg_type"] = "display_data"
    out: Message = {k: v for k, v in msg.items() if k not in ("content", "buffers")}
    out.update(header=header, msg_type="display_data", content=copy.deepcopy(_PLACEHOLDER),
               buffers=[])
    return out


__all__ = ["CompactionStats", "SessionPlan", "compact", "kept_requests",
           "plan_session", "reduce_run", "same_output"]

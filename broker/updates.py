"""``cell_update_request`` (``GET /home/U/W/C/update``): a cell's document, and what a big
one may cost.

A document under :data:`BIG` bytes of text goes in the reply's content, as always. A bigger
one is encoded here, as the JSON the client gets (file URLs in, protocol/fileurls.py), on a
thread, one at a time with at most :data:`WAITING` more waiting (503 and Retry-After past
that), and goes as the reply's one buffer with its length and SHA-256 in the signed content
(a bus message's signature covers no buffers): the gateway sends those bytes on without
decoding them. Before, ten clients repeating ``/update?since=0`` of one cell with 7 MB of
output held the gateway's loop about 48 ms a poll (unpacking the reply, then ``json.dumps``)
and another user's polls took 0.2-0.5 s, up to 2.8 s (bench/read_hammer.py).

The JSON of a finished cell's big document is kept (:data:`KEPT_BYTES` of them, the least
recently asked for dropped first), under everything it was made from: the cell's address,
``since``, and the document's request, status, seq, reset, session and each block's seq (a
block changes only with its seq). A client re-reading a finished cell then costs the broker
no encoding. A document with an interact is not kept: an interact's re-runs change the
output of a finished cell. A withheld answer (below) names the SHA-256 of the JSON kept for
it, and a big answer says whether its JSON is kept (``kept``: it is a finished cell's, the
same bytes for as long as that digest is named): the gateway keeps such bodies too, by
digest, and sends one it has without asking for it again (gateway/bigreads.py).

A document says ``lost`` (``session``, ``through``, ``why``) when the client's ``since``
is past what a restored store holds of that session (:func:`output_lost`), as a WebSocket's
subscription is told.

A request with ``"big": false`` gets, instead of a big document, only what a long-poll
decides by (``{"withheld": true, "status", "changed"}``): the gateway asks so while it waits
for a change, and asks once more for the whole document, with ``big`` and after counting it
against the client's ``--rate``, only when that is the answer it sends (gateway/cells.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from typing import Any, Final

from protocol import msgtypes as mt
from protocol import outputwords
from protocol.fileurls import add_file_urls
from protocol.turns import Turn
from protocol.wire import Message

from .cells import Cells
from .refusal import Address, Refused, Reply
from .store import Store

#: Bytes of a document's strings from which its answer is big.
BIG: Final = 256 * 1024
#: Big documents that wait while another is encoded; more are refused (503).
WAITING: Final = 4
#: Seconds a refused read is told to wait.
RETRY_AFTER: Final = 2
#: Bytes of finished cells' encoded documents kept. Each gateway keeps the ones it sends
#: too (gateway/bigreads.py), so this is for a document read through several gateways or
#: fallen out of one's; it is memory the broker holds after a burst of big reads, beside
#: its cells' views (broker.cells.VIEW_BYTES), so it is kept as small.
KEPT_BYTES: Final = 16 * 2**20
FINAL: Final = ("done", "error")
Key = tuple[Any, ...]


def kept_key(address: Address, since: int, doc: dict[str, Any]) -> Key | None:
    """What a finished cell's document is made from, to keep its JSON under; None for one
    that may still change (running, or with an interact)."""
    if doc["status"] not in FINAL or any(b.get("type") == "interact"
                                         for b in doc["output"].values()):
        return None
    return (address, since, doc["request"], doc["status"], doc["seq"], doc["reset"],
            doc["session"], tuple((bid, b.get("seq")) for bid, b in doc["output"].items()))


def text_bytes(value: Any) -> int:
    """About how many bytes ``value`` (a document, or part of one) takes as JSON: the
    lengths of its strings; the rest (numbers, keys' punctuation) is small beside them."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(len(k) + text_bytes(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(text_bytes(v) for v in value)
    return 8


def encoded(doc: dict[str, Any]) -> tuple[bytes, str]:
    """The document's JSON as the gateway sends it, and its SHA-256 (hex)."""
    body = json.dumps(doc).encode()
    return body, hashlib.sha256(body).hexdigest()


async def output_lost(store: Store, session: str, since: int) -> bool:
    """Whether a client at ``since`` of ``session`` had seen output this store lacks: it
    is a restored copy (:meth:`Store.seq_floor`) that holds neither seq ``since`` nor
    any before its floor after it, so the client read past the backup point. (The
    WebSocket's replay and ``/session`` ask it of a worksheet's feed, ``/update`` of a
    cell's document.)"""
    floor = await store.seq_floor() if since else 0
    if not 0 < since <= floor:
        return False
    rows = await store.messages(session, since=since - 1, limit=1)
    return not rows or rows[0][0] > floor


class Updates:
    """The broker's ``cell_update_request`` handler (wired in :class:`broker.intake.Intake`):
    a read, sent to no device."""

    def __init__(self, cells: Cells, *, big: int = BIG) -> None:
        self.cells, self.big = cells, big
        self._turn = Turn(WAITING)  # one big document encoded at a time
        #: Finished cells' encoded documents (body, sha256), least recently used first.
        self._kept: OrderedDict[Key, tuple[bytes, str]] = OrderedDict()
        self._kept_bytes = 0

    async def get(self, msg: Message, address: Address) -> Reply:
        """``({"document"}, [])``, or for a big one ``({"status", "changed", "bytes",
        "sha256"}, [its JSON])``, or withheld; see the module docstring."""
        content = msg["content"]
        since, session = content.get("since", 0), content.get("session")
        if not isinstance(since, int) or not 0 <= since <= mt.MAX_SEQ:
            raise Refused(400, "since must be a non-negative 64-bit integer")
        if session is not None and not isinstance(session, str):
            raise Refused(400, "session must be a string")
        view = await self.cells.for_cell(*address)
        if view is None:
            raise Refused(404, f"no cell {address[2]} in worksheet {address[1]}")
        doc = add_file_urls(view.document(since, session), address)
        # what the client had seen of its session a restored store lacks: said, so that the
        # reset (or the shorter output) it gets is not taken for all there was
        if await output_lost(self.cells.store, session or doc["session"], since):
            doc["lost"] = outputwords.lost(session or doc["session"], since)
        if text_bytes(doc) < self.big:
            return {"document": doc}, []
        said = {"status": doc["status"], "changed": bool(doc["output"] or doc["reset"])}
        key = kept_key(address, since, doc)
        kept = None
        if key is not None and (kept := self._kept.get(key)) is not None:
            self._kept.move_to_end(key)
        if content.get("big") is False:  # with the digest of the JSON kept, if it is
            return {**said, "withheld": True, **({"sha256": kept[1]} if kept else {})}, []
        if kept is not None:
            return {**said, "bytes": len(kept[0]), "sha256": kept[1], "kept": True}, [kept[0]]
        if self._turn.full:
            raise Refused(503, f"the broker has {self._turn.waiting} big cell documents to "
                               f"send already; retry in {RETRY_AFTER} s", retry_after=RETRY_AFTER)
        async with self._turn.take():
            body, digest = await asyncio.to_thread(encoded, doc)
        if key is not None:
            self._keep(key, body, digest)
        return {**said, "bytes": len(body), "sha256": digest, "kept": key is not None}, [body]

    def _keep(self, key: Key, body: bytes, digest: str) -> None:
        if len(body) > KEPT_BYTES or key in self._kept:
            return
        self._kept[key] = (body, digest)
        self._kept_bytes += len(body)
        while self._kept_bytes > KEPT_BYTES:
            _, (dropped, _) = self._kept.popitem(last=False)
            self._kept_bytes -= len(dropped)

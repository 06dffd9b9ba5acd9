"""Which records of a session's worker the device accepts: the worker trust boundary as data.

The device stamps every message with the session and request it knows itself (see
:mod:`device.workers`), so nothing a worker says about identity or routing is believed: a
record may hold only ``RECORD_KEYS``, answer only the request its worker runs, and carry no
routing facts (``metadata.cellbus``). Every record also costs pacing and counts against
``--max-output`` by its size (:func:`output_size`), whatever its type.

:func:`refusal` sorts what the device cannot accept into two kinds. A record that breaks the
link's contract (a type a session may not send, a field it may not set, a claim on a request
it was never given, fields of the wrong type; like bytes that are no record at all, which
:mod:`protocol.link` refuses) is *fatal*: only code that writes onto the link behind the
worker's back sends one, so the worker is ended rather than left to probe the device. A
well-formed record that comes too late (output of a request that has ended, from a thread
the cell left running) is only dropped.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any, NamedTuple

from protocol import msgtypes as mt

#: What a worker's record may hold (protocol.link). Anything else, such as a ``header``,
#: ``session`` or ``parent_header``, claims an identity or a route only the device decides.
RECORD_KEYS = frozenset({"msg_type", "content", "parent", "metadata", "buffers"})
#: Bytes of pacing every record costs at least, accepted or rejected, so that a worker
#: sending floods of tiny records is slowed like one printing floods of text.
RECORD_COST = 512


def output_size(msg_type: str, content: dict[str, Any], buffers: list[bytes]) -> int:
    """Bytes of output a record carries, for --max-output and pacing (roughly, cheaply)."""
    if msg_type == mt.STREAM:
        text = content.get("text")
        return len(text) if isinstance(text, str) else 0
    data = content.get("data")
    size = sum(len(b) for b in buffers)
    if isinstance(data, dict):
        size += sum(len(v) for v in data.values() if isinstance(v, str))
    return size


class Refusal(NamedTuple):
    """Why the device does not relay a record, and whether that ends its worker."""

    why: str
    fatal: bool


def refusal(record: dict[str, Any], *, running: str | None,
            earlier: Container[str]) -> Refusal | None:
    """Why ``record`` (a decoded record, see :func:`protocol.link.decode`) is not relayed;
    None if it may be. ``running``: the msg_id of the request its worker runs (None: none);
    ``earlier``: those of requests the worker was given before."""
    msg_type = record["msg_type"]
    if msg_type != mt.WORKER_LOG and msg_type not in mt.WORKER_OUTPUT_TYPES:
        return Refusal(f"msg_type {msg_type[:64]!r} is not a session output", True)
    extra = sorted(str(k)[:40] for k in record if k not in RECORD_KEYS)
    if extra:
        return Refusal(f"record has fields a worker may not set: {', '.join(extra[:5])}", True)
    content, buffers = record.get("content"), record.get("buffers") or []
    if not isinstance(content, dict) or not isinstance(buffers, list) or not all(
            isinstance(b, bytes) for b in buffers):
        return Refusal(f"{msg_type} with malformed content or buffers", True)
    if msg_type == mt.WORKER_LOG:
        if not isinstance(content.get("text"), str):
            return Refusal("worker_log without a text", True)
        return None  # the worker speaks of itself: not about any request
    metadata = record.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or "cellbus" in metadata):
        return Refusal("record carries routing facts (metadata.cellbus), which only the device "
                       "sets", True)
    parent = record.get("parent")
    if parent not in (None, "", running):
        if not isinstance(parent, str) or parent not in earlier:
            return Refusal(f"record claims to answer request {str(parent)[:64]!r}, which its "
                           "worker was never given", True)
        return Refusal(f"{msg_type} of an earlier request", False)
    if running is None:
        return Refusal(f"{msg_type} while no request runs", False)
    return None

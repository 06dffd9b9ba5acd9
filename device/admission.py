"""Which records of a session's worker the device accepts: the worker trust boundary as data.

The device stamps every message with the session and request it knows itself (see
:mod:`device.workers`), so nothing a worker says about identity or routing is believed: a
record may hold only ``RECORD_KEYS``, answer only the request its worker runs, and carry no
routing facts (``metadata.cellbus``). Every record also costs pacing and counts against
``--max-output`` by its size (:func:`output_size`), whatever its type.
"""

from __future__ import annotations

from typing import Any

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


def forged(record: dict[str, Any], running: str | None) -> str | None:
    """Why ``record`` claims an identity or route it does not have (None: it does not), its
    worker running the request ``running`` (None: none).

    The device stamps every message with the session and request it knows itself; a
    record that says anything else about who speaks, or for which request, is refused.
    """
    extra = sorted(str(k)[:40] for k in record if k not in RECORD_KEYS)
    if extra:
        return f"record has fields a worker may not set: {', '.join(extra[:5])}"
    parent = record.get("parent")
    if running is not None and parent not in (None, "", running):
        return f"record claims to answer request {str(parent)[:64]!r}, not the one it runs"
    metadata = record.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or "cellbus" in metadata):
        return "record carries routing facts (metadata.cellbus), which only the device sets"
    return None


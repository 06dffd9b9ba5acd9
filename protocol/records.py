"""A burst of signed bus messages as one: how a device sends output records that are ready
together (a worker's ``status`` busy, ``execute_input``, ``stream``, ``execute_reply``,
``status`` idle) in one send, so the broker reads, stores and acknowledges them at once.

The bundle is itself an ordinary bus message, Jupyter-shaped and signed::

    header["msg_type"] = "records"
    content            = {"frames": [5, 6, 5, ...]}   frames of each inner message, in order
    buffers            = the inner messages' frames, one after another, each message as
                         Session.serialize wrote it without its delimiter: signature,
                         header, parent_header, metadata, content, buffers...

Each inner message keeps its own signature and goes through :meth:`Session.deserialize`
like any message received alone (signature, replay, size, fields), so a bundle carries
nothing a receiver would not have accepted one by one; the outer signature only says who
grouped them. Bundles do not nest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from .errors import ProtocolError
from .msgtypes import DELIM, RECORDS
from .wire import Message, Session

#: Most records, and bytes of records, one bundle carries; the rest go in the next one.
MAX_RECORDS = 64
MAX_BYTES = 1 << 20


def bundle(wire: Session, messages: Sequence[list[bytes]]) -> list[bytes]:
    """The frames of one ``records`` message carrying ``messages`` (each the frames
    ``wire.serialize`` made, starting with the delimiter)."""
    inner = [m[1:] if m and m[0] == DELIM else m for m in messages]
    msg = wire.msg(RECORDS, {"frames": [len(m) for m in inner]})
    msg["buffers"] = [frame for m in inner for frame in m]
    return wire.serialize(msg)


def unbundle(wire: Session, msg: Message,
             rejected: Callable[[ProtocolError], None]) -> Iterator[Message]:
    """The messages a ``records`` message carries, each checked as if received alone; one
    that fails its checks is passed to ``rejected`` and skipped (the device's outbox sends
    it again, as it would a lost one). A malformed bundle is rejected whole."""
    counts = msg["content"].get("frames")
    buffers = msg.get("buffers") or []
    if (not isinstance(counts, list) or not all(type(c) is int and c >= 5 for c in counts)
            or sum(counts) != len(buffers)):
        rejected(ProtocolError("frames", "a records message whose frame counts do not "
                               "match its buffers"))
        return
    at = 0
    for count in counts:
        frames = buffers[at:at + count]
        at += count
        try:
            _, inner = wire.deserialize([DELIM, *frames])
        except ProtocolError as e:
            rejected(e)
            continue
        if inner["msg_type"] == RECORDS:
            rejected(ProtocolError("frames", "a records message inside another"))
            continue
        yield inner

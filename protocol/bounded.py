"""msgpack decoding whose cost is bounded by the bytes' size *and* by a count of values.

A msgpack byte can decode into a Python object fifty to a hundred times its size: ``0x80``
is one byte and an empty dict is 64; an ``array32`` header of five bytes announces four
billion elements. A peer that may not be trusted (a session's worker over its link, a device
over the bus) could otherwise make the node that decodes its frame allocate gigabytes from a
few megabytes and stall its event loop meanwhile. So every decode of such bytes goes through
:func:`unpack`, which refuses

* any one array or map announcing more than ``max_items`` elements, before allocating it
  (msgpack's own ``max_array_len`` / ``max_map_len``), and
* more than ``max_items`` elements and containers in all, counted as each container is
  finished (its hook), so the work done before the refusal is bounded too. Every msgpack
  value takes at least one byte, so bytes no longer than ``max_items`` cannot hold more:
  those (nearly every frame) are decoded without the hooks, a Python call per container
  (5.4 against 3.9 us for the four frames of an ``execute_reply``).

Strings and bytes cost what they weigh, so the frame limit already bounds them.

The cap is for bytes someone outside the nodes could have shaped: a session's records, and
every frame a broker or device receives. Frames *from* the broker are decoded under
:data:`protocol.wire.FROM_BROKER_MAX_VALUES` instead: its replies carry back output it
stored, each message of which entered under this cap and the output caps
(``--cell-output``, ``--user-output``), and a replay of a worksheet with several large but
allowed outputs holds more values than any one of them. As every msgpack value takes at
least one byte, the frame's byte limit bounds those; the broker keeps each replay page near
``broker.intake.REPLAY_PAGE_BYTES`` of stored messages.
"""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import ProtocolError

#: Most elements plus containers one decoded value may hold (a few tens of MB at worst).
DEFAULT_MAX_ITEMS = 1 << 20
_unpackb = msgpack.unpackb


class _Counter:
    """Counts the containers msgpack finishes and their elements; raises past the cap."""

    def __init__(self, limit: int) -> None:
        self.limit, self.seen = limit, 0

    def _count(self, n: int) -> None:
        self.seen += 1 + n
        if self.seen > self.limit:
            raise ProtocolError("oversize", f"more than {self.limit} values in one frame")

    def list_hook(self, value: list[Any]) -> list[Any]:
        self._count(len(value))
        return value

    def object_hook(self, value: dict[str, Any]) -> dict[str, Any]:
        self._count(len(value))
        return value


def unpack(data: bytes, max_items: int = DEFAULT_MAX_ITEMS) -> Any:
    """Decode ``data``, raising ``ProtocolError("oversize")`` past ``max_items`` values and
    ``ProtocolError("decode")`` if it is not exactly one msgpack value."""
    try:
        if len(data) <= max_items:  # the cap holds already: every value takes a byte or more
            # No keywords at all: msgpack >= 1.0 decodes with raw=False and strict_map_key=True
            # by default, and bounds every str, bin, array, map and ext by len(data), which is
            # within the cap here. Cython parsing the keywords was 6 % of the decode of a
            # header frame (11.7 against 11.0 thousand instructions), and a node decodes four
            # frames per message it takes (bench/RESULTS.md, issue 25, thirteenth pass).
            return _unpackb(data)
        counter = _Counter(max_items)
        return msgpack.unpackb(data, raw=False, strict_map_key=True, max_array_len=max_items,
                               max_map_len=max_items, list_hook=counter.list_hook,
                               object_hook=counter.object_hook)
    except ProtocolError:
        raise
    except ValueError as e:
        # msgpack says "... exceeds max_array_len(...)" for an announced length past the cap.
        if "exceeds max_" in str(e):
            raise ProtocolError("oversize", f"a container of more than {max_items} "
                                "values") from None
        raise ProtocolError("decode", f"{type(e).__name__}") from None
    except (TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise ProtocolError("decode", f"{type(e).__name__}") from None

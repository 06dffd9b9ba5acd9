"""A bus message as the browser sees it (:func:`to_json`): the JSON text of its header,
msg_id, msg_type, parent_header, metadata and content, buffers travelling by URL instead.

Every message a cell prints goes through here once per socket that shows it, and the text
is what ``json.dumps(..., default=str)`` of those six keys gives, byte for byte. Encoding is
mostly strings (escaping a 32-character JSON string costs about 2,300 instructions), and
the outputs of one request all carry the same ``parent_header`` (twelve strings with its
keys): so the last parent's text is kept and reused while the parent has the same items,
11 % of the instructions of a ``print(2)``'s five outputs (bench/RESULTS.md, issue 25,
thirteenth pass).
"""

from __future__ import annotations

import json
from typing import Any

from protocol import msgtypes as mt
from protocol.fileurls import file_url
from protocol.wire import Message

#: One encoder for every message: ``json.dumps`` with any keyword builds a new one per call.
_encode = json.JSONEncoder(default=str).encode


#: The last parent header encoded, as its items in order (every value a str, so an equal
#: list means the same text: no 1 == True == 1.0 between values, no other key order), and
#: its JSON text.
_last: tuple[list[tuple[str, Any]], str] = ([], "")


def parent_json(parent: Any) -> str:
    """``parent``'s JSON text, the one kept if ``parent`` has the same items in the same
    order as the last one encoded."""
    global _last
    if type(parent) is dict:
        items = list(parent.items())
        if items == _last[0] and items:
            return _last[1]
        text = _encode(parent)
        if all(type(v) is str for _, v in items):
            _last = (items, text)
        return text
    return _encode(parent)


def to_json(msg: Message) -> str:
    """A bus message as the browser sees it: buffers travel by URL instead."""
    facts = msg["metadata"].get("cellbus") or {}
    data = msg["content"].get("data")
    if (isinstance(data, dict) and isinstance(ref := data.get(mt.FILE_MIME), dict)
            and "seq" in facts):
        address = [facts.get(k, "") for k in ("user", "worksheet", "cell_id")]
        facts["url"] = file_url(address, facts["seq"], ref.get("name"))
    head = _encode({"header": msg["header"], "msg_id": msg["msg_id"],
                    "msg_type": msg["msg_type"]})
    tail = _encode({"metadata": msg["metadata"], "content": msg["content"]})
    return f'{head[:-1]}, "parent_header": {parent_json(msg["parent_header"])}, {tail[1:]}'

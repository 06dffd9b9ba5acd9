"""Where a gateway serves the files of a cell's output: ``/home/U/W/C/files/SEQ/NAME``.

Here, not in the gateway, because the broker writes these URLs into the ``/update``
documents it encodes itself (broker/updates.py: the gateway sends a big one on as the bytes
it got, without decoding it), and the gateway into the messages of a WebSocket replay.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Any


def file_url(address: Sequence[object], seq: object, name: object) -> str:
    """The URL of the file ``name`` of a cell's output message ``seq`` (the gateway's
    ``FileHandler``): in the documents of ``/update`` and on the WebSocket alike.

    The name is one segment, its slashes escaped: a file written in a folder
    (``sub/a.txt``) is served by that route, and no name a session announces (its code can
    send any bundle) leads the page's link or ``<img>`` out of the cell's files, as a name
    of ``..`` segments, which the browser resolves, did (to any path of the gateway)."""
    base = "/home/" + "/".join(urllib.parse.quote(str(p), safe="") for p in address)
    return f"{base}/files/{seq}/{urllib.parse.quote(str(name), safe='')}"


def add_file_urls(doc: dict[str, Any], address: Sequence[object]) -> dict[str, Any]:
    """Give file blocks (also inside interacts) of an ``/update`` document (whose blocks
    are copies, protocol.fold.CellOutput.blocks) the URL they are served at."""
    for block in doc.get("output", {}).values():
        if block.get("type") == "file" and "seq" in block and not block.get("too_large"):
            block["url"] = file_url(address, block["seq"], block["name"])
        if block.get("type") == "interact":
            add_file_urls(block, address)
    return doc

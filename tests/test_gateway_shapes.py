"""The gateway shapes file URLs and interact requests once, for HTTP and WebSocket alike."""

from __future__ import annotations

import json
from typing import Any

from gateway.cells import interact_content
from gateway.ws import to_json
from protocol import Session
from protocol import msgtypes as mt
from protocol.fileurls import add_file_urls, file_url

ADDRESS = ("ann", "my ws", "5/x")
URL = "/home/ann/my%20ws/5%2Fx/files/7/r%C3%A9sultat%20final.csv"


def test_file_url_quotes_each_part() -> None:
    """Each address part is one path segment (a "/" in it is quoted); the name is quoted."""
    assert file_url(ADDRESS, 7, "résultat final.csv") == URL


def test_update_documents_and_websocket_messages_carry_the_same_file_url() -> None:
    """A file block of ``/update`` (also one inside an interact) and the file's message on
    the WebSocket point at the same URL, the one FileHandler serves."""
    block = {"type": "file", "seq": 7, "name": "résultat final.csv"}
    doc: dict[str, Any] = {"output": {
        "file_0": dict(block),
        "interact_0": {"type": "interact", "output": {"file_0": dict(block)}},
        "big": {**block, "too_large": True}}}
    add_file_urls(doc, ADDRESS)
    assert doc["output"]["file_0"]["url"] == URL
    assert doc["output"]["interact_0"]["output"]["file_0"]["url"] == URL
    assert "url" not in doc["output"]["big"]
    bus = Session(b"k")
    msg = bus.msg(mt.DISPLAY_DATA, {"data": {mt.FILE_MIME: {"name": "résultat final.csv"}}},
                  metadata={"cellbus": {"user": "ann", "worksheet": "my ws", "cell_id": "5/x",
                                        "seq": 7}})
    assert json.loads(to_json(msg))["metadata"]["cellbus"]["url"] == URL


def test_interact_content_keeps_only_the_interact_fields() -> None:
    body = {"interact_id": "i1", "values": {"n": 3}, "state": 2, "code": "import os"}
    assert interact_content(body) == {"interact_id": "i1", "values": {"n": 3}, "state": 2}
    assert interact_content({}) == {"interact_id": None, "values": None, "state": None}

"""Large but allowed output comes back whole: a GET of the cell and a WebSocket replay.

msgpack frames between nodes are decoded under a cap on their count of values
(protocol/bounded.py), meant for bytes a session or a peer could craft. A cell may store
output with more values than that cap in all (each record of its own under it), within
--cell-output; the broker's replies that carry it back to the gateway must not be refused.
Six JSON displays of 200,000 values each were: the gateway dropped the broker's replay
("oversize: content: more than 1048576 values in one frame") and the WebSocket got nothing.
Now the gateway bounds the broker's frames by their bytes, and the broker keeps each replay
page near REPLAY_PAGE_BYTES of stored output.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado.websocket import websocket_connect

from broker.intake import REPLAY_PAGE_BYTES
from broker.outputcap import message_size
from fuzz_clients import close
from harness import BusClient, Chain
from protocol.wire import FROM_BROKER_MAX_VALUES, Session

CELL = "alice/big/c1"


def big_cell(outputs: int, values: int) -> str:
    """A cell showing ``outputs`` JSON displays of ``values`` small numbers each."""
    return ("class J:\n"
            "    def __init__(self, i):\n"
            "        self.i = i\n"
            "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
            f"        return {{'application/json': [self.i] * {values}}}\n"
            f"for i in range({outputs}):\n"
            "    display(J(i))\n"
            "print('shown')\n")


def replayed(chain: Chain, user: str, worksheet: str, until: int) -> list[dict[str, Any]]:
    """Every message a WebSocket subscribed from seq 0 receives, up to seq ``until``."""
    async def read() -> list[dict[str, Any]]:
        ws = await websocket_connect(f"ws://127.0.0.1:{chain.port}/ws",
                                     max_message_size=64 << 20)
        try:
            await ws.write_message(json.dumps({
                "header": {"msg_type": "subscribe_request"},
                "content": {"user": user, "worksheet": worksheet, "since": 0}}))
            got: list[dict[str, Any]] = []
            while not got or got[-1].get("metadata", {}).get("cellbus", {}).get(
                    "seq", 0) < until:
                raw = await asyncio.wait_for(ws.read_message(), 30)
                assert raw is not None, f"the WebSocket was closed after {len(got)} messages"
                got.append(json.loads(raw))
            return got
        finally:
            await close(ws)
    return asyncio.run(read())


def test_a_cell_with_many_json_values_is_read_back_whole(running_chain: Chain) -> None:
    """1,200,000 values in six displays: each under the cap, all of them over it."""
    chain, outputs, values = running_chain, 6, 200_000
    status, reply = chain.evaluate(CELL, big_cell(outputs, values))
    assert status == 202, reply
    doc = chain.wait_done(CELL, timeout=60)
    assert doc["status"] == "done", doc.get("output", {}).keys()
    # The cell's document shows each display as its text/plain; the JSON travels in the
    # messages, which a WebSocket replays.
    assert "shown" in json.dumps(doc["output"])
    status, again = chain.update(CELL)
    assert status == 200 and again["output"] == doc["output"]
    try:
        msgs = replayed(chain, "alice", "big", doc["seq"])
    except TimeoutError:
        raise AssertionError("no replay; the nodes logged:\n" + "\n".join(
            line for node in chain.nodes for line in node.log.splitlines()
            if "WARNING" in line or "ERROR" in line)) from None
    displays = [m for m in msgs if m["header"]["msg_type"] == "display_data"]
    assert sum(len(m["content"]["data"]["application/json"]) for m in displays) == \
        outputs * values


def test_a_replay_page_ends_near_its_byte_budget(running_chain: Chain, key: bytes) -> None:
    """Asked for up to 1,000 messages, the broker ends a page once it holds about
    REPLAY_PAGE_BYTES of stored output; the pages together hold everything."""
    chain = running_chain
    status, reply = chain.evaluate(CELL, big_cell(4, 500_000))
    assert status == 202, reply
    assert chain.wait_done(CELL, timeout=60)["status"] == "done"
    client = BusClient(key, connect=chain.gateway_ep, keys=chain.client_keys("replay", "gateway"))
    client.session = Session(key, max_values=FROM_BROKER_MAX_VALUES)
    try:
        since, pages, values = 0, [], 0
        while True:
            request = client.request("session_replay_request", {"since": since, "limit": 1000},
                                     None, user="alice", worksheet="big", cell_id="-",
                                     auth="none")
            asked = request["msg_id"]
            page = client.wait_for(lambda m, asked=asked: m["parent_header"].get("msg_id")
                                   == asked, timeout=30)["content"]
            assert page["ok"], page
            pages.append(page["messages"])
            sizes = [message_size(m) for m in page["messages"]]
            assert sum(sizes[:-1]) < REPLAY_PAGE_BYTES, sizes
            values += sum(len(m["content"]["data"].get("application/json", ()))
                          for m in page["messages"] if m["header"]["msg_type"] == "display_data")
            since = page["messages"][-1]["metadata"]["cellbus"]["seq"]
            if not page["more"]:
                break
        assert values == 4 * 500_000 and len(pages) >= 2
    finally:
        client.close()

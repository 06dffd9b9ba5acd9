"""An interact request that names no interact the cell shows is refused at once, over HTTP and
over the WebSocket alike, with a 404 that names the interact: before, the broker accepted it
(202), the session's LookupError was stored under no block of the cell, and ``/update``
showed the user nothing."""

from __future__ import annotations

import json

from test_chain_interact import SEED, interact_block, post_interact
from test_chain_ws import connect, read_until, send  # noqa: F401 (connect: a fixture)

OTHER = "@interact\ndef g(k=(1, 5)):\n    print('g', k)"


def test_an_interact_the_cell_does_not_show_is_refused_over_http(shared_chain) -> None:
    """Tests that an unknown interact id, another cell's interact, and the interact of a run
    the cell has since replaced each get 404 naming the interact, and leave the cell's
    output as it was (nothing was run or stored for them)."""
    chain = shared_chain
    chain.evaluate("lost/ws/1", SEED)
    chain.evaluate("lost/ws/2", OTHER)
    first = interact_block(chain.wait_done("lost/ws/1"))["interact_id"]
    other = interact_block(chain.wait_done("lost/ws/2"))["interact_id"]

    for unknown in ("f" * 32, other):
        status, body = post_interact(chain, "lost/ws/1", unknown, {"n": 3}, 1)
        assert status == 404, body
        assert f"no interact {unknown} in cell 1" in body["error"], body

    chain.evaluate("lost/ws/1", SEED)  # a new run: a new interact replaces the first
    doc = chain.wait_done("lost/ws/1")
    assert interact_block(doc)["interact_id"] != first
    status, body = post_interact(chain, "lost/ws/1", first, {"n": 3}, 1)
    assert status == 404 and f"no interact {first} in cell 1" in body["error"], body
    assert chain.update("lost/ws/1")[1]["output"] == doc["output"]  # nothing ran

    status, body = post_interact(chain, "lost/ws/1", interact_block(doc)["interact_id"],
                                 {"n": 3}, 1)
    assert status == 202, body  # the interact the cell shows runs


async def test_an_interact_the_cell_does_not_show_is_refused_over_the_websocket(
        shared_chain, connect) -> None:  # noqa: F811
    """Tests that the WebSocket's interact_request for an interact the cell does not show is
    answered as HTTP answers it: not ok, 404, the same words."""
    chain = shared_chain
    chain.evaluate("lostws/ws/1", SEED)
    chain.wait_done("lostws/ws/1")
    ws = await connect(chain)
    await send(ws, "interact_request", {"interact_id": "e" * 32, "values": {"n": 2},
                                        "state": 1},
               user="lostws", worksheet="ws", cell_id="1")
    [reply] = (await read_until(ws, lambda m: m["msg_type"] == "request_accepted"))[-1:]
    assert reply["content"]["ok"] is False, reply
    assert reply["content"]["http_status"] == 404, reply
    assert f"no interact {'e' * 32} in cell 1" in reply["content"]["error"], reply
    assert json.dumps(chain.update("lostws/ws/1")[1]["output"]).count('"error"') == 0

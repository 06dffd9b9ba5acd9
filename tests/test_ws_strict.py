"""The WebSocket API is strict where RFC 6455 and JSON say so: unmasked client frames fail
the connection, and a bool is not an integer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado.websocket import websocket_connect

from harness import Chain
from raw_ws import RawSocket


def subscribe_content(since: Any) -> dict[str, Any]:
    return {"user": "u", "worksheet": "w", "since": since}


def test_an_unmasked_client_frame_fails_the_connection(shared_chain: Chain) -> None:
    """RFC 6455 5.1: the server closes the connection (here with 1002, protocol error) and
    does not act on the frame; the same frame masked is answered."""
    chain = shared_chain
    unmasked = RawSocket(chain.port)
    unmasked.send_json("subscribe_request", subscribe_content(0), masked=False)
    ending = unmasked.read_to_end(timeout=10)
    unmasked.close()
    assert ending.messages == [] and ending.code == 1002, ending
    chain.gateway.wait_for_log(r"unmasked frame; closing it \(code 1002")
    masked = RawSocket(chain.port)
    masked.send_json("subscribe_request", subscribe_content(0))
    opcode, payload = masked.read_frame()
    masked.close()
    assert json.loads(payload)["msg_type"] == "subscribe_reply"


def test_bools_are_not_integers(shared_chain: Chain) -> None:
    """``"since": true`` was taken as 1 (a bool is an int in Python); it is a 400 now, like
    a string or a float. An interact's ``state`` of true is refused as well."""
    async def replies() -> list[dict[str, Any]]:
        ws = await websocket_connect(f"ws://127.0.0.1:{shared_chain.port}/ws")
        got = []
        for since in (True, False, 1.0, "1"):
            await ws.write_message(json.dumps({"header": {"msg_type": "subscribe_request"},
                                               "content": subscribe_content(since)}))
            got.append(json.loads(await asyncio.wait_for(ws.read_message(), 10)))
        await ws.write_message(json.dumps({
            "header": {"msg_type": "interact_request"},
            "content": {"interact_id": "i", "values": {}, "state": True},
            "metadata": {"cellbus": {"user": "u", "worksheet": "w", "cell_id": "1"}}}))
        got.append(json.loads(await asyncio.wait_for(ws.read_message(), 10)))
        ws.close()
        return got

    *subscribes, interact = asyncio.run(replies())
    for reply in subscribes:
        assert reply["msg_type"] == "subscribe_reply", reply
        assert not reply["content"]["ok"] and reply["content"]["http_status"] == 400
        assert "since" in reply["content"]["error"] and "integer" in reply["content"]["error"]
    assert not interact["content"]["ok"] and interact["content"]["http_status"] == 400
    assert "integer state" in interact["content"]["error"]
    status, body = shared_chain.http("POST", "/home/u/w/1/interact", json.dumps(
        {"interact_id": "i", "values": {}, "state": True}).encode())
    assert status == 400 and "integer state" in body["error"]  # over HTTP too


def test_text_that_is_not_utf8_closes_with_1007(shared_chain: Chain) -> None:
    """RFC 6455 8.1 and the README: a text message that is not UTF-8 gets a close frame with
    code 1007 (tornado dropped the connection without one), on every WebSocket route; a
    valid one on a new socket is still answered."""
    chain = shared_chain
    status, kernel = chain.http("POST", "/api/kernels", json.dumps({"name": "python"}).encode())
    assert status == 201, kernel
    for path in ("/ws", f"/api/kernels/{kernel['id']}/channels?session_id=c1"):
        bad = RawSocket(chain.port, path=path)
        bad.send_frame(b'{"a":"\xff\xfe"}')
        ending = bad.read_to_end(timeout=10)
        bad.close()
        assert ending.code == 1007, (path, ending)
    good = RawSocket(chain.port)
    good.send_json("subscribe_request", subscribe_content(0))
    opcode, payload = good.read_frame()
    good.close()
    assert json.loads(payload)["msg_type"] == "subscribe_reply"

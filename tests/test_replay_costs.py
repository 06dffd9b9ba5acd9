"""A replay of a worksheet's feed costs its reader's ``--rate``, by what it carries.

Big ``/update`` answers, big files and notebook downloads counted against ``--rate``
(tests/test_read_costs.py), but replays did not: a client that subscribed its WebSocket from
seq 0 again and again, or opened many sockets each replaying a big history, or came back to
a kernel's channels from an old position, or long-polled ``/session`` from 0, read as much as
it liked, each page taken from the broker and encoded by the gateway (ten such loops on a
7 MB worksheet: another user's polls at 25 ms median instead of 4, bench/read_hammer.py
--mode ws). Now each page a replay takes costs the reader what it carried, a token per MiB
(gateway/bigreads.py ``PageTurn``), and a replay whose reader's bucket is empty waits for
it (``/session``, over HTTP, is refused instead). A layout or a permalink over 256 KiB, read
again and again, costs a token a read, as a big ``/update`` answer does. Real broker, device
and gateway (``--auth token --rate 4/h``: nothing comes back during the test), one user per
door, each with one token left before its read.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from access_util import JSON, Answer, add_user, bearer, call, evaluate_body
from harness import Chain
from jupyter_ws import Channels, stdout

pytestmark = pytest.mark.timeout(120)

#: Bytes of output in one run: 0.57 of a token's MiB, in one page of a replay.
BIG = 600_000
BIG_PRINT = f"print('x' * {BIG})"


def run(chain: Chain, token: str, path: str, code: str) -> None:
    """Evaluate ``code`` at ``path`` and wait for its end: two tokens, the evaluate and
    the big answer."""
    started = call(chain.port, "POST", f"{path}/evaluate", evaluate_body(code),
                   {**JSON, **bearer(token)})
    assert started.status == 202, started.body
    done = call(chain.port, "GET", f"{path}/update?since=0&wait=30&until=done",
                headers=bearer(token))
    assert done.status == 200 and done.body["status"] == "done", done.body


def evaluate(chain: Chain, token: str, path: str) -> Answer:
    """One more evaluate at ``path``, not waited for: the rate's answer."""
    return call(chain.port, "POST", f"{path}/evaluate", evaluate_body("print(1)"),
                {**JSON, **bearer(token)})


async def ws_replay(chain: Chain, token: str, user: str, worksheet: str) -> str:
    """The stdout a WebSocket subscription from seq 0 replays, up to its subscribe_reply."""
    ws = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{chain.port}/ws",
                                             headers=bearer(token)),
                                 max_message_size=64 << 20)
    await ws.write_message(json.dumps({"header": {"msg_type": "subscribe_request"},
                                       "content": {"user": user, "worksheet": worksheet,
                                                   "since": 0}}))
    text = []
    async with asyncio.timeout(30):
        while True:
            raw = await ws.read_message()
            assert raw is not None, "the socket closed mid-replay"
            msg: dict[str, Any] = json.loads(raw)
            if msg["msg_type"] == "subscribe_reply":
                assert msg["content"]["ok"], msg["content"]
                break
            if msg["msg_type"] == "stream":
                text.append(msg["content"]["text"])
    ws.close()
    return "".join(text)


async def test_every_replay_counts_against_the_rate(chain: Chain) -> None:
    """Tests that a WebSocket's replay from seq 0, a ``/session`` long-poll from 0 and a
    Jupyter client's channels coming back from an old position each cost their user what
    they carried (0.6 MB: 0.57 of a token): with one token left before it, the user's next
    run is refused (429, the rate's words), where before it was accepted, replays being
    free. The replays themselves are whole. And a big layout or permalink, read again and
    again, costs a token a read (before: never refused)."""
    ann, bob, cat = (add_user(chain, name) for name in ("ann", "bob", "cat"))
    chain.start_broker()
    chain.start_device()
    chain.start_gateway("--auth", "token", "--rate", "4/h")

    for user, token in (("ann", ann), ("bob", bob)):  # three tokens
        assert evaluate(chain, token, f"/home/{user}/other/1").status == 202
        run(chain, token, f"/home/{user}/w/1", BIG_PRINT)
    # The WebSocket.
    assert len(await ws_replay(chain, ann, "ann", "w")) == BIG + 1
    refused = evaluate(chain, ann, "/home/ann/w/2")
    assert refused.status == 429, refused.body
    assert refused.body["error"].startswith("too many requests (limit 4/h); retry in ")
    assert refused.headers["Retry-After"]
    # /session from 0: it reads the feed (for its notes) as a replay does.
    notes = call(chain.port, "GET", "/home/bob/w/session?since=0", headers=bearer(bob))
    assert notes.status == 200 and notes.body["seq"] > 0 and not notes.body["more"], notes.body
    refused = evaluate(chain, bob, "/home/bob/w/2")
    assert refused.status == 429, refused.body
    # Over HTTP a read whose reader's bucket is empty is refused, as a big /update is (a
    # replay on a socket waits instead: its client has nothing to retry).
    again = call(chain.port, "GET", "/home/bob/w/session?since=0", headers=bearer(bob))
    assert again.status == 429 and again.headers["Retry-After"], again.body
    assert again.body["error"].startswith("too many requests (limit 4/h); retry in ")

    # A Jupyter client back on its kernel's channels after a run it did not see: the
    # kernel's start and two runs are three tokens.
    kernel = call(chain.port, "POST", "/api/kernels", "{}", {**bearer(cat), **JSON})
    assert kernel.status == 201, kernel.body
    away = await Channels.open(chain.port, kernel.body["id"], token=cat)
    assert stdout(await away.execute("print(1)")) == "1\n"  # its position: after this run
    await away.close()
    other = await Channels.open(chain.port, kernel.body["id"], token=cat)
    assert len(stdout(await other.execute(BIG_PRINT))) == BIG + 1
    await other.close()
    back = await Channels.open(chain.port, kernel.body["id"], client=away.client, token=cat)
    got = await back.until(lambda m: m["msg_type"] == "execute_reply")
    assert stdout(got) == "x" * BIG + "\n"
    request = await back.send("execute_request", {"code": "print(1)", "silent": False})
    reply = await back.until(lambda m: m["msg_type"] == "execute_reply" and m[
        "parent_header"].get("msg_id") == request["header"]["msg_id"])
    await back.close()
    assert reply[-1]["content"]["status"] == "error", reply[-1]["content"]
    assert reply[-1]["content"]["evalue"].startswith("too many requests (limit 4/h)")

    # A worksheet's layout and a permalink of 0.6 MB, saved (a token each) and read again
    # and again: each read over 256 KiB is a token, as a big /update answer is.
    dan, eve = add_user(chain, "dan"), add_user(chain, "eve")
    layout = json.dumps({"cells": [{"id": "1", "type": "code", "code": "#" * BIG}]})
    saved = call(chain.port, "POST", "/home/dan/w/layout", layout, {**bearer(dan), **JSON})
    assert saved.status == 200, saved.body
    link = call(chain.port, "POST", "/permalink", json.dumps({"code": "#" * BIG}),
                {**bearer(eve), **JSON})
    assert link.status == 201, link.body
    for token, path in ((dan, "/home/dan/w/layout"), (eve, f"/permalink/{link.body['id']}")):
        reads = [call(chain.port, "GET", path, headers=bearer(token)) for _ in range(4)]
        assert [r.status for r in reads] == [200, 200, 200, 429], (path, reads[-1].body)
        assert reads[0].body == reads[2].body and "#" * BIG in json.dumps(reads[0].body)
        assert reads[3].body["error"].startswith("too many requests (limit 4/h); retry in ")


async def test_a_paced_replay_waits_without_the_turn() -> None:
    """Tests that a reader whose bucket is spent waits for its next page outside the page
    turn: another reader's page is taken meanwhile, and the paced one comes once its bucket
    refilled (gateway/bigreads.py PageTurn, on the limiter alone)."""
    from gateway.bigreads import PAGE_COST, PageTurn
    from gateway.ratelimit import Rate, RateLimiter

    turn = PageTurn(RateLimiter(Rate(1, 0.5)))  # one token, back in half a second
    order: list[str] = []

    async def page(reader: str) -> None:
        async with turn.take(reader):
            order.append(reader)
            turn.paid(reader, {"bytes": PAGE_COST})

    await page("ann")  # her token
    paced = asyncio.ensure_future(page("ann"))  # waits for the next one, not in the turn
    await asyncio.sleep(0)
    await asyncio.wait_for(page("bob"), 5)  # would wait behind ann's if she held the turn
    assert turn.due("ann") is not None and not paced.done()  # bob's came while ann waits
    await asyncio.wait_for(paced, 5)
    assert order == ["ann", "bob", "ann"] and turn.due("carl") is None

"""A flood of the same read of a finished cell costs no broker round trip each
(gateway/finished.py): ten loops of a small ``/update`` kept another user's polls at 34 ms
median against 4 ms idle, and a big one refused 429 past ``--rate`` asked the broker before
each refusal (bench/read_hammer.py --mode small, --mode update)."""

from __future__ import annotations

import asyncio
import json
import re

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from access_util import BIG_PRINT, JSON, add_user, bearer, call, run_done
from harness import Chain
from jupyter_ws import Channels

def kept(chain: Chain, token: str) -> float:
    """The gateway's count of reads answered without asking the broker (0 if it has none)."""
    page = call(chain.port, "GET", "/metrics", headers=bearer(token))
    assert page.status == 200, page.body
    for line in page.body.decode().splitlines():
        if line.startswith("cellbus_update_answers_kept "):
            return float(line.split()[1])
    return 0.0


def test_repeated_reads_of_a_finished_cell_are_answered_without_the_broker(
        chain: Chain) -> None:
    """Tests that ten re-reads of a finished cell's small document answer it as the broker
    did, most of them without asking it; that a run of the cell again is seen at once (the
    new output, not the kept one); and that re-reads of a big document past ``--rate`` are
    refused with the rate's words without asking the broker either. Before, every read was
    a round trip to the broker (nothing was counted as kept)."""
    ann = add_user(chain, "ann")
    chain.start_broker()
    chain.start_device()
    chain.start_gateway("--auth", "token", "--rate", "4/min")
    small, big = "/home/ann/w/1", "/home/ann/w/2"
    first = run_done(chain, ann, small, "print(2)").body  # a token
    before = kept(chain, ann)
    reads = [call(chain.port, "GET", f"{small}/update?since=0", headers=bearer(ann))
             for _ in range(10)]
    assert [r.status for r in reads] == [200] * 10
    assert all(r.body == first for r in reads)
    spared = kept(chain, ann) - before
    assert spared >= 5, spared  # one in each FRESH (2 s) at most asks the broker

    second = run_done(chain, ann, small, "print(3)").body  # a token; the run is seen at once
    assert second["output"]["stdout_0"]["content"] == "3\n", second
    again = call(chain.port, "GET", f"{small}/update?since=0", headers=bearer(ann))
    assert again.body == second

    run_done(chain, ann, big, BIG_PRINT)  # the last two tokens: the evaluate, the big answer
    before = kept(chain, ann)
    refused = [call(chain.port, "GET", f"{big}/update?since=0", headers=bearer(ann))
               for _ in range(6)]
    assert [r.status for r in refused] == [429] * 6, [r.body for r in refused]
    assert all("too many requests (limit 4/min); retry in" in r.body["error"]
               and r.headers["Retry-After"] for r in refused)
    assert kept(chain, ann) - before >= 3


def test_a_client_past_its_requests_is_refused_in_its_words_and_logged_once(
        chain: Chain) -> None:
    """Tests that past ``--client-requests`` any request of a client (here a read that is
    never counted against ``--rate``) is refused 429 with Retry-After and the option's
    words, another user's requests still answer, and the client's refusals make one
    access line, not one each (the next says how many it left out). Before, a client that
    ignored Retry-After could send small reads without end, each a request of the
    gateway's loop and a round trip to the broker, and every 429 was a WARNING line. So
    are the refusals of requests no one was admitted for (401, an unknown route's 404):
    one line per client address, not one each as before."""
    ann, bob = add_user(chain, "ann"), add_user(chain, "bob")
    chain.start_broker()
    chain.start_device()
    chain.start_gateway("--auth", "token", "--client-requests", "4/min")
    cell = "/home/ann/w/1"
    run_done(chain, ann, cell, "print(2)")  # two requests of ann's four: the evaluate, the poll
    got = [call(chain.port, "GET", f"{cell}/update?since=0", headers=bearer(ann))
           for _ in range(3)]
    assert [a.status for a in got] == [200, 200, 429], [a.body for a in got]
    for refused in got[2:]:
        assert refused.body["error"].startswith(
            "too many requests from this client (limit 4/min, --client-requests); retry in")
        assert int(refused.headers["Retry-After"]) >= 1
    shake = call(chain.port, "GET", "/ws", headers={
        **bearer(ann), "Connection": "Upgrade", "Upgrade": "websocket",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})
    assert shake.status == 429 and "--client-requests" in shake.body["error"], shake
    # Requests nobody is admitted for: no token, a made-up one, a route that does not exist.
    # Anyone who reaches the gateway can send them without end (no --client-requests bucket
    # is theirs), and each was a WARNING line: 4,356 in 8 s from 16 connections.
    strangers = [({}, "/api/kernels"), (bearer("x" * 43), "/api/kernels"),
                 ({}, "/no/such/route")] * 3
    assert [call(chain.port, "GET", path, headers=headers).status
            for headers, path in strangers] == [401, 401, 404] * 3
    other = call(chain.port, "GET", "/home/bob/w/1/update?since=0", headers=bearer(bob))
    assert other.status == 404, other.body  # bob's own bucket: answered (no such cell)
    assert chain.gateway is not None
    chain.gateway.wait_for_log(r"429 GET /home/ann/w/1/update")
    chain.gateway.wait_for_log(r"404 GET /home/bob/w/1/update")  # logged after the strangers
    lines = [line for line in chain.gateway.log.splitlines() if " 429 " in line]
    assert len(lines) == 1, lines
    refused = [line for line in chain.gateway.log.splitlines()
               if re.search(r" 40[14] GET /(api/kernels|no/such/route) ", line)]
    assert len(refused) == 1, refused  # the others counted, said with its next line
    # bob's two requests left (4/min: his read, then the handshake) on his WebSocket's
    # messages, each a round trip to the broker (631 a second from one socket before).
    said = asyncio.run(interrupts(chain.port, bob, 3))
    assert [s["http_status"] for s in said] == [404, 404, 429], said
    assert said[2]["error"].startswith(
        "too many requests from this client (limit 4/min, --client-requests); retry in")
    # And on a Jupyter client's channels (kernel_info_request: a round trip to the broker):
    # cy's kernel start and handshake, then two requests answered, the third refused.
    cy = add_user(chain, "cy")
    kernel = call(chain.port, "POST", "/api/kernels", "{}", {**bearer(cy), **JSON})
    assert kernel.status == 201, kernel.body
    replies = asyncio.run(kernel_infos(chain.port, kernel.body["id"], cy, 3))
    assert [r["status"] for r in replies] == ["ok", "ok", "error"], replies
    assert replies[2]["evalue"].startswith("too many requests from this client (limit 4/min")


async def kernel_infos(port: int, kernel: str, token: str, count: int) -> list[dict]:
    """The content of the kernel_info_replies to ``count`` requests on one channels socket."""
    channels = await Channels.open(port, kernel, token=token)
    try:
        replies = []
        for _ in range(count):
            await channels.send("kernel_info_request", {})
            got = await channels.until(lambda m: m["msg_type"] == "kernel_info_reply")
            replies.append(got[-1]["content"])
        return replies
    finally:
        await channels.close()


async def interrupts(port: int, token: str, count: int) -> list[dict]:
    """The replies' content of ``count`` interrupt_requests for bob's cell w/1 (which does
    not exist) on one WebSocket."""
    ws = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{port}/ws",
                                             headers=bearer(token)))
    said = []
    for _ in range(count):
        await ws.write_message(json.dumps({
            "header": {"msg_type": "interrupt_request"}, "content": {},
            "metadata": {"cellbus": {"user": "bob", "worksheet": "w", "cell_id": "1"}}}))
        said.append(json.loads(await ws.read_message())["content"])
    ws.close()
    return said


def test_kept_answers_are_bounded_and_never_older_than_a_change() -> None:
    """Tests that :class:`gateway.finished.FinishedAnswers` keeps no answer asked for
    before its worksheet changed, nor one of a cell still running, forgets one at the next
    change, and keeps no more than its bytes (the oldest go first)."""
    from gateway.finished import FinishedAnswers

    kept = FinishedAnswers(max_bytes=4096)
    cell, other = ("ann", "w", "1"), ("ann", "w", "2")
    doc = {"document": {"status": "done", "output": {"a": "x" * 1500}}}
    before = kept.seen(cell)
    kept.changed("ann", "w")  # a run began while the read was asked
    kept.keep(cell, 0, None, before, doc)
    assert kept.get(cell, 0, None) is None
    kept.keep(cell, 0, None, kept.seen(cell), {"document": {"status": "running"}})
    assert kept.get(cell, 0, None) is None
    kept.keep(cell, 0, None, kept.seen(cell), doc)
    assert kept.get(cell, 0, None) == doc and kept.get(cell, 5, None) is None
    kept.keep(cell, 5, None, kept.seen(cell), doc)
    kept.keep(other, 0, None, kept.seen(other), doc)  # a third of 1.5 KB: the first goes
    assert kept.get(cell, 0, None) is None and kept.get(other, 0, None) == doc
    kept.changed("ann", "w")
    assert kept.get(other, 0, None) is None and kept.get(cell, 5, None) is None

"""A public gateway without tokens (``--allow-anonymous``, like SageMathCell): every visitor
is the one user ``anonymous`` to Jupyter's API, so a kernel's id is all that keeps it one
visitor's. Listing kernels or sessions must not hand those ids to every other visitor.
A real chain, its gateway on 0.0.0.0 (a public address) and on loopback (one person's)."""

from __future__ import annotations

import json

from harness import Chain


def start(chain: Chain, *gateway: str) -> str:
    """The chain's nodes, and a kernel one visitor started: its id."""
    chain.start_broker()
    chain.start_device()
    chain.start_gateway(*gateway)
    status, doc = chain.http("POST", "/api/kernels", json.dumps({"name": "python"}).encode())
    assert status == 201, doc
    return str(doc["id"])


def test_a_public_gateway_lists_no_visitors_kernels_to_another(chain: Chain) -> None:
    """Before, GET /api/kernels and /api/sessions on a public gateway listed every
    visitor's kernel, which any other visitor could then read and drive. Now they list
    none; the visitor who knows its kernel's id still reaches it."""
    kernel = start(chain, "--host", "0.0.0.0", "--allow-anonymous")
    assert chain.http("GET", "/api/kernels") == (200, [])
    assert chain.http("GET", "/api/sessions") == (200, [])
    status, doc = chain.http("GET", f"/api/kernels/{kernel}")
    assert status == 200 and doc["id"] == kernel


def test_a_loopback_gateway_without_auth_lists_its_kernels(chain: Chain) -> None:
    """One person's gateway (loopback, no auth) lists them, as jupyter_server does."""
    kernel = start(chain)
    status, listed = chain.http("GET", "/api/kernels")
    assert status == 200 and [k["id"] for k in listed] == [kernel]
    status, sessions = chain.http("GET", "/api/sessions")
    assert status == 200 and [s["kernel"]["id"] for s in sessions] == [kernel]


def test_a_public_gateway_counts_a_visitors_sessions_by_its_address(chain: Chain) -> None:
    """Without tokens a user is a name in a URL, so the broker counted no one's sessions,
    and on a public gateway one client took every place of every device (here all five
    evaluates under five names were taken, and it could go on to --max-sessions) for
    --idle-timeout, while every other visitor got 'at capacity'. Now an anonymous visitor
    of a public gateway is counted by its address against --user-sessions (4 by default),
    its Jupyter kernel included (the first of its four here)."""
    start(chain, "--host", "0.0.0.0", "--allow-anonymous")  # a kernel: one session
    answers = [chain.http("POST", f"/home/name{i}/w/c/evaluate",
                          json.dumps({"input": "print(1)"}).encode()) for i in range(5)]
    assert [status for status, _ in answers[:3]] == [202, 202, 202], answers
    status, doc = answers[3]
    assert status == 429 and doc["error"].startswith(
        "quota: the visitor ip:127.0.0.1 already has 4 running sessions"), answers[3]
    assert answers[4][0] == 429
    # a worksheet that holds a place keeps running
    assert chain.http("POST", "/home/name0/w/c2/evaluate",
                      json.dumps({"input": "print(2)"}).encode())[0] == 202


def test_a_loopback_gateway_without_auth_counts_no_one(chain: Chain) -> None:
    """One person's gateway: no per-user or per-address cap, as before (README, Quotas)."""
    start(chain)
    statuses = [chain.http("POST", f"/home/name{i}/w/c/evaluate",
                           json.dumps({"input": "print(1)"}).encode())[0] for i in range(5)]
    assert statuses == [202] * 5


async def test_a_visitors_sessions_over_the_websocket_count_by_its_address(
        chain: Chain) -> None:
    """The same count for execute requests over the page's WebSocket: the fifth session of
    one visitor, under a fifth name, is refused with the quota's 429."""
    from tornado.websocket import websocket_connect
    chain.start_broker()
    chain.start_device()
    chain.start_gateway("--host", "0.0.0.0", "--allow-anonymous")
    ws = await websocket_connect(f"ws://127.0.0.1:{chain.port}/ws")
    try:
        answers = []
        for i in range(5):
            await ws.write_message(json.dumps({
                "header": {"msg_type": "execute_request"}, "content": {"code": "print(1)"},
                "metadata": {"cellbus": {"user": f"name{i}", "worksheet": "w",
                                         "cell_id": "c"}}}))
            while True:
                msg = json.loads(await ws.read_message())
                if msg["msg_type"] == "request_accepted":
                    answers.append(msg["content"])
                    break
        assert [a.get("ok") for a in answers[:4]] == [True] * 4, answers
        assert answers[4].get("http_status") == 429 and answers[4]["error"].startswith(
            "quota: the visitor ip:127.0.0.1 already has 4 running sessions"), answers[4]
    finally:
        ws.close()

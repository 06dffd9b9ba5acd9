"""Jupyter's kernels REST and channels WebSocket on the gateway, over the whole chain."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_ws import Channels, stdout


def start_kernel(chain) -> str:
    status, doc = chain.http("POST", "/api/kernels", json.dumps({"name": "python"}).encode())
    assert status == 201, doc
    uuid.UUID(doc["id"])
    assert doc["name"] == "python" and doc["connections"] == 0
    return doc["id"]


@pytest.mark.parametrize("binary", [False, True], ids=["legacy-json", "v1-binary"])
async def test_execute_over_channels(shared_chain, binary: bool) -> None:
    """kernel_info is answered; print, a result and an error come as Jupyter's messages on
    their channels, in both wire formats."""
    kernel_id = start_kernel(shared_chain)
    ch = await Channels.open(shared_chain.port, kernel_id, binary=binary)
    try:
        info = await ch.send("kernel_info_request", {})
        got = await ch.until(lambda m: m["msg_type"] == "kernel_info_reply")
        reply = got[-1]
        assert reply["channel"] == "shell"
        assert reply["parent_header"]["msg_id"] == info["header"]["msg_id"]
        assert reply["content"]["language_info"]["name"] == "python"
        msgs = await ch.execute("print('hello'); 6 * 7")
        kinds = [m["msg_type"] for m in msgs]
        assert kinds[0] == "status" and msgs[0]["content"]["execution_state"] == "busy"
        assert "execute_input" in kinds and "execute_reply" in kinds
        assert stdout(msgs) == "hello\n"
        result = next(m for m in msgs if m["msg_type"] == "execute_result")
        assert result["content"]["data"]["text/plain"] == "42"
        assert result["channel"] == "iopub"
        assert next(m for m in msgs if m["msg_type"] == "execute_reply")["channel"] == "shell"
        assert all("cellbus" not in m["metadata"] for m in msgs)
        msgs = await ch.execute("1/0")
        error = next(m for m in msgs if m["msg_type"] == "error")
        assert error["content"]["ename"] == "ZeroDivisionError"
        reply = next(m for m in msgs if m["msg_type"] == "execute_reply")
        assert reply["content"]["status"] == "error"
    finally:
        await ch.close()


async def test_rest_models_owners_and_schemes(chain) -> None:
    """Kernels and kernelspecs answer jupyter_server's models; a token works as ``token T``,
    ``Bearer T`` and ``?token=T``; another user's kernel is 404 on every route."""
    from access_util import add_user, call
    from test_access import start
    alice, bob = add_user(chain, "alice"), add_user(chain, "bob")
    start(chain, "--auth", "token")
    port = chain.port
    as_alice = {"Authorization": f"token {alice}", "Content-Type": "application/json"}
    assert call(port, "GET", "/api/kernels").status == 401
    specs = call(port, "GET", "/api/kernelspecs", headers=as_alice)
    assert specs.status == 200 and specs.body["default"] == "python"
    assert specs.body["kernelspecs"]["python"]["spec"]["language"] == "python"
    assert call(port, "GET", "/api/kernelspecs/python", headers=as_alice).body["name"] == "python"
    assert call(port, "GET", "/api/kernelspecs/nope", headers=as_alice).status == 404
    created = call(port, "POST", "/api/kernels", b'{"name": "python"}', headers=as_alice)
    assert created.status == 201, created.body
    kernel_id = created.body["id"]
    assert created.headers["Location"] == f"/api/kernels/{kernel_id}"
    assert set(created.body) == {"id", "name", "last_activity", "execution_state",
                                 "connections"}
    listed = call(port, "GET", "/api/kernels", headers={"Authorization": f"Bearer {alice}"})
    assert [k["id"] for k in listed.body] == [kernel_id]
    got = call(port, "GET", f"/api/kernels/{kernel_id}?token={alice}")
    assert got.status == 200 and got.body["last_activity"].endswith("Z")
    as_bob = {"Authorization": f"token {bob}"}
    assert call(port, "GET", "/api/kernels", headers=as_bob).body == []
    for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/interrupt"),
                         ("POST", "/restart")):
        answer = call(port, method, f"/api/kernels/{kernel_id}{path}", b"" if method == "POST"
                      else None, headers=as_bob)
        assert answer.status == 404, (method, path, answer.body)
    with pytest.raises(HTTPClientError) as refused:
        await Channels.open(port, kernel_id, token=bob)
    assert refused.value.code == 404, "another user's kernel has no channels either"
    mine = await Channels.open(port, kernel_id, token=alice)
    await mine.close()
    session = call(port, "POST", "/api/sessions", json.dumps(
        {"path": "a.ipynb", "name": "a.ipynb", "type": "notebook",
         "kernel": {"id": kernel_id}}), headers=as_alice)
    assert session.status == 201 and session.body["kernel"]["id"] == kernel_id
    assert call(port, "POST", f"/api/kernels/{kernel_id}/interrupt", b"",
                headers=as_alice).status == 204
    restarted = call(port, "POST", f"/api/kernels/{kernel_id}/restart", b"", headers=as_alice)
    assert restarted.status == 200 and restarted.body["id"] == kernel_id
    assert call(port, "DELETE", f"/api/kernels/{kernel_id}", headers=as_alice).status == 204
    assert call(port, "GET", f"/api/kernels/{kernel_id}", headers=as_alice).status == 404


EIGHT_LINES = ("import time\nfor i in range(8):\n    print(f'line {i}', flush=True)\n"
               "    time.sleep(0.4)\n")


def lines_of(msgs: list[dict]) -> list[str]:
    return [line for line in stdout(msgs).splitlines() if line.startswith("line ")]


async def drain(ch: Channels) -> list[dict]:
    """Close the socket and keep what arrived before the close did."""
    got = []
    ch.ws.close()
    async with asyncio.timeout(10):
        while (raw := await ch.ws.read_message()) is not None:
            got.append(json.loads(raw))
    return got


async def test_reconnect_same_and_new_client_lose_and_repeat_nothing(shared_chain) -> None:
    """A client that drops mid-cell and comes back with its session_id gets every line
    after the last one delivered to it, once; a new session_id gets the running execution's
    output from its start, then live."""
    kernel_id = start_kernel(shared_chain)
    first = await Channels.open(shared_chain.port, kernel_id, client="alice-tab")
    request = await first.send("execute_request", {"code": EIGHT_LINES})
    msg_id = request["header"]["msg_id"]
    got = await first.until(lambda m: len(lines_of([m])) and m["content"]["text"].startswith(
        "line 2"))
    status, doc = shared_chain.http("GET", f"/api/kernels/{kernel_id}")
    assert (doc["execution_state"], doc["connections"]) == ("busy", 1)
    got += await drain(first)
    newcomer = await Channels.open(shared_chain.port, kernel_id, client="late-tab")
    again = await Channels.open(shared_chain.port, kernel_id, client="alice-tab")
    try:
        def idle(m: dict) -> bool:
            return (m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
                    and m["parent_header"].get("msg_id") == msg_id)
        late = await newcomer.until(idle)
        rest = await again.until(idle)
        assert lines_of(late) == [f"line {i}" for i in range(8)]
        assert lines_of(got + rest) == [f"line {i}" for i in range(8)]
        assert sum(m["msg_type"] == "execute_input" for m in got + rest) == 1
        status, doc = shared_chain.http("GET", f"/api/kernels/{kernel_id}")
        assert (doc["execution_state"], doc["connections"]) == ("idle", 2)
    finally:
        await newcomer.close()
        await again.close()


async def test_replay_survives_a_gateway_restart(running_chain) -> None:
    """The delivery position is the store's: after the gateway restarts, the same
    session_id gets the lines it missed and none twice."""
    kernel_id = start_kernel(running_chain)
    first = await Channels.open(running_chain.port, kernel_id, client="tab")
    request = await first.send("execute_request", {"code": EIGHT_LINES})
    got = await first.until(lambda m: len(lines_of([m])) and m["content"]["text"].startswith(
        "line 1"))
    running_chain.gateway.stop()
    async with asyncio.timeout(10):
        while (raw := await first.ws.read_message()) is not None:
            got.append(json.loads(raw))
    first.ws.close()
    running_chain.start_gateway()
    again = await Channels.open(running_chain.port, kernel_id, client="tab")
    try:
        rest = await again.until(lambda m: m["msg_type"] == "status" and m["content"][
            "execution_state"] == "idle" and m["parent_header"].get("msg_id") == request[
            "header"]["msg_id"])
        assert lines_of(got + rest) == [f"line {i}" for i in range(8)]
    finally:
        await again.close()


async def test_control_channel_interrupt_restart_and_shutdown(shared_chain) -> None:
    """interrupt_request and shutdown_request (restart or not) on the control channel act
    on the kernel, as the REST routes do."""
    kernel_id = start_kernel(shared_chain)
    ch = await Channels.open(shared_chain.port, kernel_id, binary=True)
    try:
        await ch.execute("x = 1")
        request = await ch.send("execute_request", {"code": "import time\nprint('zzz', "
                                                    "flush=True)\ntime.sleep(60)"})
        await ch.until(lambda m: m["msg_type"] == "stream")
        await ch.send("interrupt_request", {}, channel="control")
        got = await ch.until(lambda m: m["msg_type"] == "execute_reply")
        assert got[-1]["parent_header"]["msg_id"] == request["header"]["msg_id"]
        assert got[-1]["content"]["ename"] == "KeyboardInterrupt"
        # The interrupt_reply (control) and the cell's end (shell) come by different ways,
        # in either order (as from a Jupyter kernel).
        if not any(m["msg_type"] == "interrupt_reply" for m in got):
            got += await ch.until(lambda m: m["msg_type"] == "interrupt_reply")
        assert [m["channel"] for m in got if m["msg_type"] == "interrupt_reply"] == ["control"]
        await ch.send("shutdown_request", {"restart": True}, channel="control")
        reply = (await ch.until(lambda m: m["msg_type"] == "shutdown_reply"))[-1]
        assert reply["content"]["restart"] is True
        errors = [m for m in await ch.execute("print(x)") if m["msg_type"] == "error"]
        assert [m["content"]["ename"] for m in errors] == ["NameError"]
        await ch.send("shutdown_request", {"restart": False}, channel="control")
        await ch.until(lambda m: m["msg_type"] == "status"
                       and m["content"]["execution_state"] == "dead")
    finally:
        await ch.close()
    assert shared_chain.http("GET", f"/api/kernels/{kernel_id}")[0] == 404


def test_position_is_the_last_message_handed_over() -> None:
    """A message still queued in the outbox is not delivered: the position stops before it
    (it lags, never runs ahead)."""
    from gateway.jupyter.positions import Positions
    positions = Positions()
    assert positions.handed(0) is None
    positions.sent(100, ("s", 1))
    positions.sent(250, ("s", 2))
    positions.sent(300, ("s", 3))
    assert positions.handed(99) is None
    assert positions.handed(260) == ("s", 2)
    assert positions.handed(260) == ("s", 2)
    assert positions.handed(300) == ("s", 3)


def test_a_session_keeps_its_path_through_a_restart(running_chain) -> None:
    """POST /api/sessions starts a kernel; its path, name and type are listed afterwards
    (from the store, not this gateway's memory) and survive a kernel restart."""
    status, made = running_chain.http("POST", "/api/sessions", json.dumps({
        "path": "work/a.ipynb", "name": "a.ipynb", "type": "notebook",
        "kernel": {"name": "python"}}).encode())
    assert status == 201, made
    kernel_id = made["kernel"]["id"]
    assert (made["id"], made["path"], made["name"]) == (kernel_id, "work/a.ipynb", "a.ipynb")
    running_chain.gateway.stop()
    running_chain.start_gateway()
    status, listed = running_chain.http("GET", "/api/sessions")
    assert status == 200 and [(s["id"], s["path"], s["type"]) for s in listed] == [
        (kernel_id, "work/a.ipynb", "notebook")]
    assert running_chain.http("POST", f"/api/kernels/{kernel_id}/restart", b"")[0] == 200
    status, one = running_chain.http("GET", f"/api/sessions/{kernel_id}")
    assert status == 200 and one["path"] == "work/a.ipynb" and one["kernel"]["id"] == kernel_id
    assert running_chain.http("DELETE", f"/api/sessions/{kernel_id}")[0] == 204
    assert running_chain.http("GET", "/api/sessions") == (200, [])


async def test_input_over_the_stdin_channel(shared_chain) -> None:
    """input() in a kernel's cell asks the client that ran it on the stdin channel; its
    input_reply (parented by the input_request, as Jupyter clients send it) is the answer,
    and the same reply sent again answers nothing (409 at the broker, so no second prompt
    gets it). The prompts and answers are not echoed on stdout to a Jupyter client, which
    shows them itself (JupyterLab showed each prompt and answer twice: its own stdin line,
    then the echo that the page's stored output has)."""
    kernel_id = start_kernel(shared_chain)
    ch = await Channels.open(shared_chain.port, kernel_id)
    try:
        request = await ch.send("execute_request", {
            "code": 'a = input("first? ")\nb = input("second? ")\nprint(a, b)',
            "silent": False, "allow_stdin": True})
        seen = await ch.until(lambda m: m["msg_type"] == "input_request")
        asked = seen[-1]
        assert asked["channel"] == "stdin" and asked["content"]["prompt"] == "first? "
        reply = ch.message("input_reply", {"value": "one"})
        reply["parent_header"] = asked["header"]
        for _ in range(2):  # a client's retry: the second must not answer "second? "
            await ch.ws.write_message(json.dumps({**reply, "channel": "stdin"}))
        seen += await ch.until(lambda m: m["msg_type"] == "input_request")
        again = seen[-1]
        assert again["content"]["prompt"] == "second? "
        reply = ch.message("input_reply", {"value": "two"})
        reply["parent_header"] = again["header"]
        await ch.ws.write_message(json.dumps({**reply, "channel": "stdin"}))
        seen += await ch.until(lambda m: m["parent_header"].get("msg_id") ==
                               request["header"]["msg_id"] and m["msg_type"] == "status"
                               and m["content"]["execution_state"] == "idle")
        assert stdout([m for m in seen if m["parent_header"].get("msg_id") ==
                       request["header"]["msg_id"]]) == "one two\n"
    finally:
        await ch.close()


async def test_a_closed_session_note_is_no_jupyter_message(chain) -> None:
    """The broker's session_closed note (for cellbus's pages, broker/closures.py) stays off
    the channels: a Jupyter client sees the next run's messages only."""
    chain.start_broker()
    chain.start_device("--idle-timeout", "1")
    chain.start_gateway()
    kernel_id = start_kernel(chain)
    ch = await Channels.open(chain.port, kernel_id, binary=True)
    try:
        request = await ch.send("execute_request", {"code": "x = 1"})
        await ch.until(lambda m: m["parent_header"].get("msg_id") == request["header"]["msg_id"]
                       and m["msg_type"] == "execute_reply")
        await asyncio.to_thread(chain.broker.wait_for_log,
                                r"closed session \S+ \(idle timeout\)", 30)
        after = await ch.send("execute_request", {"code": "print(1)"})
        seen = await ch.until(lambda m: m["parent_header"].get("msg_id") ==
                              after["header"]["msg_id"] and m["msg_type"] == "execute_reply")
        assert [m["msg_type"] for m in seen if m["msg_type"] == "session_closed"] == []
    finally:
        await ch.close()

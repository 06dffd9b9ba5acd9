"""input() and getpass() through the whole chain: the prompt as stored output, the answer by
HTTP (``POST …/input``) and by WebSocket (``input_reply``), to that session only; refusals
(409, 404, 413, 400), an interrupt while waiting, ``--input-timeout``, and a password that
reaches no store, feed nor log."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from access_util import store_path
from test_chain_ws import close, read_until, send
from tornado.websocket import websocket_connect

ASK = 'print("before")\nname = input("Name? ")\nprint("hi", name)'


def answer(chain, cell: str, value: Any) -> tuple[int, Any]:
    return chain.http("POST", f"/home/{cell}/input", json.dumps({"value": value}).encode())


def wait_prompt(chain, cell: str, timeout: float = 30, after: int = 0) -> dict[str, Any]:
    """The cell's open input block (one opened after seq ``after``), once its update shows
    one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, doc = chain.update(cell, wait=2)
        assert status == 200, doc
        prompts = [b for b in doc["output"].values()
                   if b["type"] == "input" and b["state"] == "open" and b["seq"] > after]
        if prompts:
            return prompts[0]
        assert doc["status"] not in ("done", "error"), doc
    raise AssertionError(f"cell {cell} showed no prompt within {timeout} s")


def text(doc: dict[str, Any], stream: str = "stdout") -> str:
    return "".join(b["content"] for b in sorted(doc["output"].values(), key=lambda b: b["order"])
                   if b["type"] == "text" and b.get("stream") == stream)


def test_input_answered_over_http(shared_chain) -> None:
    chain = shared_chain
    assert chain.evaluate("u/ws/1", ASK)[0] == 202
    block = wait_prompt(chain, "u/ws/1")
    assert (block["prompt"], block["password"]) == ("Name? ", False)
    assert answer(chain, "u/ws/1", "Ada") == (202, {"cell_id": "1", "status": "answered"})
    doc = chain.wait_done("u/ws/1")
    assert doc["status"] == "done"
    assert text(doc) == "before\nName? Ada\nhi Ada\n"
    assert [b["state"] for b in doc["output"].values() if b["type"] == "input"] == ["closed"]
    # The prompt is answered: a second answer is a conflict, as is one to a finished cell.
    status, body = answer(chain, "u/ws/1", "again")
    assert status == 409 and "waits for no input" in body["error"]


def test_bad_answers(shared_chain) -> None:
    chain = shared_chain
    assert answer(chain, "bad/ws/9", "x")[0] == 404  # a cell that never ran
    assert answer(chain, "bad/nows/9", "x")[0] == 404
    chain.evaluate("bad/ws/1", "x = 1")
    chain.wait_done("bad/ws/1")
    assert answer(chain, "bad/ws/1", "x")[0] == 409  # ran, asks nothing
    chain.evaluate("bad/ws/2", ASK)
    wait_prompt(chain, "bad/ws/2")
    assert answer(chain, "bad/ws/1", "x")[0] == 409  # another cell of the session asks
    status, body = answer(chain, "bad/ws/2", "x" * (64 * 1024 + 1))
    assert status == 413 and "limit" in body["error"]
    assert answer(chain, "bad/ws/2", 5)[0] == 400
    assert chain.http("POST", "/home/bad/ws/2/input", b"[1]")[0] == 400
    assert chain.http("POST", "/home/bad/ws/2/input", b"{nope")[0] == 400
    assert answer(chain, "bad/ws/2", "\u00e9" * (32 * 1024))[0] == 202  # at the limit in UTF-8
    assert chain.wait_done("bad/ws/2")["status"] == "done"


def test_interrupt_while_waiting_ends_input(shared_chain) -> None:
    chain = shared_chain
    chain.evaluate("intr/ws/1", ASK)
    wait_prompt(chain, "intr/ws/1")
    assert chain.http("POST", "/home/intr/ws/1/interrupt", b"")[0] == 202
    doc = chain.wait_done("intr/ws/1")
    errors = [b for b in doc["output"].values() if b["type"] == "error"]
    assert doc["status"] == "error" and errors[0]["ename"] == "KeyboardInterrupt"
    assert answer(chain, "intr/ws/1", "late")[0] == 409
    chain.evaluate("intr/ws/2", "print(input('more? '))")  # the session still asks and hears
    wait_prompt(chain, "intr/ws/2")
    assert answer(chain, "intr/ws/2", "yes")[0] == 202
    assert text(chain.wait_done("intr/ws/2")) == "more? yes\nyes\n"


def test_forgotten_prompt_ends_with_input_timeout(chain) -> None:
    chain.start_broker()
    chain.start_device("--input-timeout", "1")
    chain.start_gateway()
    chain.evaluate("u/ws/1", ASK)
    doc = chain.wait_done("u/ws/1")
    (error,) = [b for b in doc["output"].values() if b["type"] == "error"]
    assert error["ename"] == "InputTimeout"
    assert "--input-timeout" in error["evalue"] and "1 s" in error["evalue"]
    assert answer(chain, "u/ws/1", "too late")[0] == 409


def test_waiting_for_an_answer_is_not_execution_time(chain) -> None:
    """With --exec-timeout 1 and --input-timeout 3, a prompt left alone ends by the input
    timeout, not the execution limit: a person's thinking is not the cell's running time."""
    chain.start_broker()
    chain.start_device("--exec-timeout", "1", "--input-timeout", "3")
    chain.start_gateway()
    chain.evaluate("u/ws/1", ASK)
    doc = chain.wait_done("u/ws/1")
    (error,) = [b for b in doc["output"].values() if b["type"] == "error"]
    assert error["ename"] == "InputTimeout", error


async def test_input_over_the_websocket_and_a_password_kept_nowhere(shared_chain) -> None:
    """The prompt arrives as output on the socket; the answer goes back as input_reply. The
    password appears in no stored byte, no message of the feed, no node's log."""
    chain = shared_chain
    secret = f"pw-{uuid.uuid4().hex}"
    ws = await websocket_connect(f"ws://127.0.0.1:{chain.port}/ws")
    try:
        await send(ws, "subscribe_request", {"user": "u", "worksheet": "w", "since": 0})
        await read_until(ws, lambda m: m["msg_type"] == "subscribe_reply")
        code = "import getpass\npw = getpass.getpass('Key: ')\nprint(len(pw))"
        await send(ws, "execute_request", {"code": code}, user="u", worksheet="w", cell_id="c")
        seen = await read_until(ws, lambda m: m["msg_type"] == "input_request")
        prompt = seen[-1]
        assert prompt["content"] == {"prompt": "Key: ", "password": True}
        assert prompt["metadata"]["cellbus"]["seq"] > 0  # stored output, with its seq
        await send(ws, "input_reply", {"value": secret}, user="u", worksheet="w", cell_id="c")
        seen += await read_until(ws, lambda m: m["msg_type"] == "execute_reply")
        # The answer's request_accepted comes by the broker's reply socket, the output by its
        # feed: either may come first.
        while sum(m["msg_type"] == "request_accepted" for m in seen) < 2:
            seen += await read_until(ws, lambda m: m["msg_type"] == "request_accepted")
        accepted = [m for m in seen if m["msg_type"] == "request_accepted"]
        assert all(m["content"]["ok"] for m in accepted) and len(accepted) == 2
        streams = "".join(m["content"]["text"] for m in seen if m["msg_type"] == "stream")
        assert streams == f"Key: \n{len(secret)}\n"
        await send(ws, "input_reply", {"value": "again"}, user="u", worksheet="w", cell_id="c")
        refused = (await read_until(ws, lambda m: m["msg_type"] == "request_accepted"))[-1]
        assert refused["content"]["ok"] is False and refused["content"]["http_status"] == 409
        await send(ws, "input_reply", {"value": "x" * (64 * 1024 + 1)}, user="u",
                   worksheet="w", cell_id="c")
        big = (await read_until(ws, lambda m: m["msg_type"] == "request_accepted"))[-1]
        assert big["content"]["http_status"] == 413
        # A replay from the store (a page that reloads) has the prompt, never the password.
        await send(ws, "subscribe_request", {"user": "u", "worksheet": "w", "since": 0})
        replayed = await read_until(ws, lambda m: m["msg_type"] == "subscribe_reply")
    finally:
        await close(ws)
    assert [m["content"]["prompt"] for m in replayed if m["msg_type"] == "input_request"] == [
        "Key: "]
    assert secret not in json.dumps(seen + replayed)
    db = Path(store_path(chain))
    for path in db.parent.glob(db.name + "*"):  # the database, its WAL and shared memory
        assert secret.encode() not in path.read_bytes(), path
    for node in chain.nodes:
        assert node.log and secret not in node.log, node.argv


def test_a_prompt_waiting_through_a_broker_restart_is_answered(running_chain) -> None:
    """The broker keeps pending prompts in memory; one that restarts finds a prompt still on
    screen in the store, and the answer reaches the session (once: a second is a 409)."""
    chain = running_chain
    assert chain.evaluate("u/ws/1", ASK)[0] == 202
    wait_prompt(chain, "u/ws/1")
    chain.broker.stop()
    chain.start_broker()
    deadline = time.monotonic() + 30
    while (got := answer(chain, "u/ws/1", "Ada"))[0] == 503 and time.monotonic() < deadline:
        time.sleep(0.2)  # the gateway reconnects to the new broker
    assert got == (202, {"cell_id": "1", "status": "answered"}), got
    assert answer(chain, "u/ws/1", "again")[0] == 409
    doc = chain.wait_done("u/ws/1")
    assert text(doc) == "before\nName? Ada\nhi Ada\n", doc


def test_an_answer_names_its_prompt_and_a_repeat_answers_nothing_else(shared_chain) -> None:
    """A client that sends its answer twice (a retry after a lost reply) must not answer the
    run's next prompt with it: with the prompt's seq named, the repeat is a 409, and a
    password asked next never sees (nor echoes, nor stores) the first answer."""
    chain = shared_chain
    code = ('name = input("Name? ")\nimport getpass\npw = getpass.getpass("pw: ")\n'
            'print(name, len(pw))')
    assert chain.evaluate("names/ws/1", code)[0] == 202
    first = wait_prompt(chain, "names/ws/1")
    body = {"value": "Ada", "prompt": first["seq"]}
    post = lambda b: chain.http("POST", "/home/names/ws/1/input", json.dumps(b).encode())  # noqa: E731
    assert post(body)[0] == 202
    second = wait_prompt(chain, "names/ws/1", after=first["seq"])
    assert second["password"]
    status, refused = post(body)  # the same answer again: it names the first prompt
    assert status == 409 and "waits for no input" in refused["error"], refused
    assert post({"value": "x", "prompt": "no"})[0] == 400
    assert post({"value": "s3cret", "prompt": second["seq"]})[0] == 202
    doc = chain.wait_done("names/ws/1")
    assert text(doc).endswith("Ada 6\n"), doc

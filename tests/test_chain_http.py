"""The whole chain over HTTP: gateway, broker on SQLite, device, session workers."""

from __future__ import annotations

import json
import signal
import urllib.parse

from harness import Feed, until, wait_gateway_linked

CELL = "wstein/myws/5"


def test_seed_walk_through(shared_chain) -> None:
    """Seed 000 over HTTP: accepted as needs_work, working with an open stdout_0 holding "2\\n",
    then done with every line in one closed block."""
    chain = shared_chain
    code = 'import time\nprint(2)\ntime.sleep(3)\nprint(3)\nprint("hello")'
    status, accepted = chain.evaluate(CELL, code)
    assert status == 202
    assert accepted["cell_id"] == "5" and accepted["status"] == "needs_work"
    doc = until(lambda: (d := chain.update(CELL, wait=2)[1])["output"] and d,
                "the cell's first output")
    assert doc["status"] == "working"
    assert doc["input"] == code
    assert doc["output"]["stdout_0"]["content"] == "2\n"
    assert doc["output"]["stdout_0"]["state"] == "open"
    done = chain.wait_done(CELL)
    assert done["status"] == "done"
    block = done["output"]["stdout_0"]
    assert (block["type"], block["order"], block["content"], block["state"]) == (
        "text", 0, "2\n3\nhello\n", "closed")


def test_lost_update_is_repeated_and_since_returns_only_newer(shared_chain) -> None:
    chain, cell = shared_chain, "lost/myws/5"
    chain.evaluate(cell, "import time\nprint('a', flush=True)\ntime.sleep(0.5)\nprint('b')\n"
                         "raise ValueError('boom')")
    doc = chain.wait_done(cell)
    assert doc["status"] == "error"
    again = chain.update(cell)[1]
    assert again == doc  # a lost response costs nothing: asking again gives the same answer
    assert doc["output"]["error_1"]["ename"] == "ValueError"
    assert any("boom" in line for line in doc["output"]["error_1"]["traceback"])
    _, newer = chain.update(cell, since=doc["seq"])
    assert newer["output"] == {} and newer["seq"] == doc["seq"]
    error_seq = doc["output"]["error_1"]["seq"]
    _, partial = chain.update(cell, since=error_seq - 1)
    assert "error_1" in partial["output"]
    assert all(b["seq"] > error_seq - 1 for b in partial["output"].values())
    assert partial["output"]["stdout_0"]["content"] == "a\nb\n"  # whole blocks, not deltas


def test_reevaluate_without_input_runs_the_stored_input(shared_chain) -> None:
    chain, cell = shared_chain, "again/myws/5"
    chain.evaluate(cell, "n = globals().get('n', 0) + 1\nprint(n)")
    assert chain.wait_done(cell)["output"]["stdout_0"]["content"] == "1\n"
    status, body = chain.http("POST", f"/home/{cell}/evaluate", b"")
    assert status == 202
    doc = chain.wait_done(cell)
    assert doc["output"]["stdout_0"]["content"] == "2\n" and doc["request"] == body["msg_id"]


def test_state_is_shared_by_the_cells_of_a_worksheet(shared_chain) -> None:
    chain = shared_chain
    chain.evaluate("u/ws/1", "x = 41")
    chain.wait_done("u/ws/1")
    chain.evaluate("u/ws/2", "print(x + 1)")
    assert chain.wait_done("u/ws/2")["output"]["stdout_0"]["content"] == "42\n"
    chain.evaluate("u/other/1", "print(x)")
    assert chain.wait_done("u/other/1")["output"]["error_0"]["ename"] == "NameError"


def test_gateway_killed_mid_run_loses_nothing(running_chain) -> None:
    chain = running_chain
    code = "import time\nfor i in range(6):\n    print(i, flush=True)\n    time.sleep(0.5)"
    feed = Feed(chain)
    try:
        msg_id = chain.evaluate(CELL, code)[1]["msg_id"]
        until(lambda: chain.update(CELL, wait=2)[1]["output"], "the cell's first output")
        chain.gateway.stop(signal.SIGKILL)
        feed.wait_for(lambda m: m["msg_type"] == "status"  # the run ends with no gateway
                      and m["content"].get("execution_state") == "idle"
                      and m["parent_header"].get("msg_id") == msg_id, "end of the run", 30)
    finally:
        feed.close()
    chain.start_gateway()
    doc = chain.wait_done(CELL)
    assert doc["output"]["stdout_0"]["content"] == "".join(f"{i}\n" for i in range(6))


def test_requests_wait_for_a_device_and_run_in_order(chain) -> None:
    """With no device, accepted requests wait in the store (the broker may even restart
    meanwhile), and run in order once a device comes."""
    chain.start_broker()
    chain.start_gateway()
    for i in range(3):
        assert chain.evaluate(f"u/ws/{i}", f"log = globals().get('log', []) + [{i}]\n"
                                           "print(log)")[0] == 202
    chain.broker.stop()
    chain.start_broker()
    wait_gateway_linked(chain)
    assert [chain.update(f"u/ws/{i}")[1]["status"] for i in range(3)] == ["needs_work"] * 3
    chain.start_device()
    docs = [chain.wait_done(f"u/ws/{i}") for i in range(3)]
    assert [d["output"]["stdout_0"]["content"] for d in docs] == ["[0]\n", "[0, 1]\n",
                                                                  "[0, 1, 2]\n"]


def test_bad_input_gets_json_errors_and_stores_nothing(shared_chain) -> None:
    chain, cell = shared_chain, "bad/myws/5"
    status, body = chain.http("POST", f"/home/{cell}/evaluate", b"print(1)")
    assert status == 400 and "JSON" in body["error"]
    status, body = chain.http("POST", f"/home/{cell}/evaluate", b"[1]")
    assert status == 400 and "error" in body
    status, body = chain.update("nobody/nothing/0")
    assert status == 404 and "error" in body
    status, body = chain.evaluate("big/ws/1", "x" * (1024 * 1024 + 1))
    assert status == 413 and "limit" in body["error"]
    assert chain.update("big/ws/1")[0] == 404  # nothing was stored
    status, body = chain.http("GET", "/no/such/route")
    assert status == 404 and "error" in body
    status, body = chain.http("GET", f"/home/{cell}/update?since=-1")
    assert status == 400 and "since" in body["error"]
    status, body = chain.http("POST", f"/home/{cell}/evaluate", b"")
    assert status == 404 and "stored input" in body["error"]


def test_form_input_and_files(shared_chain) -> None:
    chain, cell = shared_chain, "form/myws/5"
    status, _ = chain.http("POST", f"/home/{cell}/evaluate",
                           b"input=open('r.csv','w').write('a%2Cb%5Cn')",
                           content_type="application/x-www-form-urlencoded")
    assert status == 202
    doc = chain.wait_done(cell)
    block = doc["output"]["file_0"]
    assert (block["name"], block["mime"]) == ("r.csv", "text/csv")
    status, data = chain.http("GET", block["url"])
    assert status == 200 and data == b"a,b\n"
    assert chain.http("GET", block["url"].replace("r.csv", "s.csv"))[0] == 404


def test_a_files_url_stays_in_its_cells_files(shared_chain) -> None:
    """A file written in a folder is served at its block's URL, and no file name (what a
    session announces: IPython's ``display(..., raw=True)`` sends any bundle) makes that URL,
    resolved as a browser resolves it, leave the cell's files. Before, the name went into the
    URL with its slashes: ``sub/a.txt`` answered 404 (no route), and ``../../../../../..``
    led the page's link and ``<img>`` to any path of the gateway (``/api/kernels``)."""
    chain, cell = shared_chain, "files/myws/5"
    code = ("import os\nos.makedirs('sub', exist_ok=True)\n"
            "open('sub/a.txt', 'w').write('in a folder')\n"
            "from IPython.display import display\n"
            "display({'text/plain': 'x', 'application/x-cellbus-file+json': {'name': "
            "'../../../../../../api/kernels', 'size': 2, 'mime': 'image/png'}}, raw=True)\n")
    assert chain.http("POST", f"/home/{cell}/evaluate",
                      json.dumps({"input": code}).encode())[0] == 202
    doc = chain.wait_done(cell)
    blocks = {b["name"]: b for b in doc["output"].values() if b["type"] == "file"}
    assert set(blocks) == {"sub/a.txt", "../../../../../../api/kernels"}, doc["output"]
    assert chain.http("GET", blocks["sub/a.txt"]["url"]) == (200, b"in a folder")
    for block in blocks.values():
        path = urllib.parse.urlsplit(urllib.parse.urljoin("http://gw/", block["url"])).path
        assert path.startswith(f"/home/{cell}/files/{block['seq']}/"), block["url"]


def test_no_broker_answers_503(chain) -> None:
    chain.start_gateway()
    status, body = chain.evaluate(CELL, "1")
    assert status == 503 and "retry" in body["error"]

"""The HTTP API's edges a first user hits: long names, interrupting what does not run,
waiting until a cell is done, and seqs from before a restart of the worksheet."""

from __future__ import annotations

import time

import pytest

from harness import Chain, http_with_headers

SLOW = "import time\nprint('first', flush=True)\ntime.sleep(3)\nprint('second')"


@pytest.mark.parametrize("where", ["user name", "worksheet", "cell id"])
def test_a_name_over_the_limit_is_a_400_that_names_it(shared_chain: Chain, where: str) -> None:
    """Tests that a 300-character user, worksheet or cell id is refused with 400 and the
    limit, not a 404 "no such cell" that sends the client looking for a typo."""
    parts = ["u", "ws", "1"]
    parts[["user name", "worksheet", "cell id"].index(where)] = "x" * 300
    for method, action, body in (("GET", "update", None), ("POST", "evaluate", b'{"input": "1"}'),
                                 ("POST", "interrupt", None)):
        status, reply = shared_chain.http(method, f"/home/{'/'.join(parts)}/{action}", body)
        assert status == 400, (action, reply)
        assert reply["error"] == f"the {where} is 300 characters long; the limit is 200"


def test_interrupt_answers_404_for_an_unknown_cell_409_for_an_idle_one(
        shared_chain: Chain) -> None:
    """Tests that only a running cell is answered 202 "interrupting"."""
    chain = shared_chain
    status, reply = chain.http("POST", "/home/intr/ws/9/interrupt")
    assert (status, reply["error"]) == (404, "no cell 9 in worksheet ws")
    chain.evaluate("intr/ws/1", "print(1)")
    assert chain.wait_done("intr/ws/1")["status"] == "done"
    status, reply = chain.http("POST", "/home/intr/ws/1/interrupt")
    assert status == 409 and "not running" in reply["error"], reply
    status, reply = chain.http("POST", "/home/intr/ws/2/interrupt")  # the worksheet has a session
    assert status == 404, reply
    chain.evaluate("intr/ws/2", "import time\nprint('go', flush=True)\ntime.sleep(60)")
    chain.update("intr/ws/2", wait=20)  # its first output: it runs
    status, reply = chain.http("POST", "/home/intr/ws/2/interrupt")
    assert (status, reply["status"]) == (202, "interrupting")
    doc = chain.wait_done("intr/ws/2")
    [error] = [b for b in doc["output"].values() if b["type"] == "error"]
    assert error["ename"] == "KeyboardInterrupt"
    trace = "".join(error["traceback"])  # the user's frames only, as for any other error
    assert '"<cell-' in trace and "time.sleep(60)" in trace, trace
    assert "session/" not in trace and "interrupts.py" not in trace, trace


def test_update_wait_answers_at_the_first_change_and_until_done_at_the_end(
        shared_chain: Chain) -> None:
    """Tests the two ways to wait: ``wait`` alone answers at the first change, while the
    cell still runs; ``until=done`` answers once it is done, with all of its output."""
    chain = shared_chain
    chain.evaluate("waiter/ws/1", SLOW)
    status, first = chain.http("GET", "/home/waiter/ws/1/update?wait=30")
    assert status == 200 and first["status"] in ("needs_work", "working"), first
    chain.evaluate("waiter/ws/2", SLOW)
    started = time.monotonic()
    status, doc = chain.http("GET", "/home/waiter/ws/2/update?wait=30&until=done")
    assert status == 200 and doc["status"] == "done", doc
    assert time.monotonic() - started >= 3  # it ran the whole of the sleep
    assert doc["output"]["stdout_0"]["content"] == "first\nsecond\n"
    status, reply = chain.http("GET", "/home/waiter/ws/2/update?until=later")
    assert status == 400 and "until must be" in reply["error"]


def test_a_since_from_before_a_restart_gets_everything_with_reset(shared_chain: Chain) -> None:
    """Tests that after the worksheet's restart (its new session counts seqs from 1 again), a
    client polling with a seq of the old session is told to replace what it shows (``reset``)
    and gets the new output, instead of a silent empty answer."""
    chain = shared_chain
    for i in range(3):  # the old session's seqs go well past the new run's
        chain.evaluate("resetter/ws/1", f"print({i})")
        old = chain.wait_done("resetter/ws/1")
    assert old["seq"] > 10
    status, reply = chain.http("POST", "/home/resetter/ws/1/restart")
    assert status == 202, reply
    chain.evaluate("resetter/ws/1", "print('new')")
    new = chain.wait_done("resetter/ws/1")
    assert new["session"] != old["session"] and new["seq"] < old["seq"]
    status, doc = chain.update("resetter/ws/1", since=old["seq"])
    assert status == 200 and doc["reset"] is True, doc
    assert doc["output"]["stdout_0"]["content"] == "new\n"
    assert doc["seq"] == new["seq"]
    # a seq that happens to fall inside the new session's: the session names the difference
    status, doc = chain.http("GET", f"/home/resetter/ws/1/update?since=1&session={old['session']}")
    assert doc["reset"] is True and doc["output"]["stdout_0"]["content"] == "new\n", doc
    status, doc = chain.http("GET", f"/home/resetter/ws/1/update?since={new['seq']}"
                                    f"&session={new['session']}")
    assert doc["reset"] is False and doc["output"] == {}, doc


def test_a_method_a_route_does_not_take_names_the_ones_it_does(shared_chain: Chain) -> None:
    """Tests that GET of .../evaluate (a first try with curl, no -d) is a 405 whose error
    and Allow header name POST, and PUT of .../update names GET (before: "Method Not
    Allowed", no Allow header, nothing on what to send)."""
    for method, path, allowed in (("GET", "/home/u/ws/1/evaluate", "POST"),
                                  ("PUT", "/home/u/ws/1/update", "GET")):
        status, headers, reply = http_with_headers(shared_chain, method, path)
        assert status == 405, (path, reply)
        assert headers.get("Allow") == allowed, (path, headers)
        assert reply["error"] == f"{path} takes {allowed}, not {method}", reply


def test_a_restart_while_a_cell_runs_says_the_session_was_restarted(
        shared_chain: Chain) -> None:
    """Tests that the cell running when its worksheet is restarted ends with SessionClosed
    saying the session was closed while it ran, as the cells queued behind it do (before:
    "WorkerDied: the session's worker process was killed by signal 9 (SIGKILL) while running
    this cell", which reads as a crash the user did not cause)."""
    chain = shared_chain
    chain.evaluate("restarter/ws/1", "import time\nprint('started', flush=True)\n"
                                     "time.sleep(60)")
    deadline = time.monotonic() + 30
    while "started" not in chain.update("restarter/ws/1", wait=2)[1]["output"].get(
            "stdout_0", {}).get("content", ""):
        assert time.monotonic() < deadline, "the cell never started"
    status, body = chain.http("POST", "/home/restarter/ws/1/restart", b"")
    assert status == 202, body
    doc = chain.wait_done("restarter/ws/1")
    [error] = [b for b in doc["output"].values() if b["type"] == "error"]
    assert error["ename"] == "SessionClosed", error
    assert error["evalue"].startswith("the session was closed (shutdown requested) while "
                                      "this cell ran; its worker "), error


def test_the_readme_table_s_empty_query_values_are_the_defaults(shared_chain: Chain) -> None:
    """Tests that ``update?since=&wait=`` and ``session?since=&session=``, as the README's
    table writes them, answer as without those arguments (before: 400 "since must be a
    number"), and that a seq that is no whole number says so."""
    chain = shared_chain
    assert chain.evaluate("blank/ws/1", "print(1)")[0] == 202
    chain.wait_done("blank/ws/1")
    status, doc = chain.http("GET", "/home/blank/ws/1/update?since=&wait=")
    assert status == 200 and doc["status"] == "done", doc
    status, notes = chain.http("GET", "/home/blank/ws/session?since=&session=&wait=")
    assert status == 200 and notes["session"] == doc["session"], notes
    for path in ("/home/blank/ws/1/update?since=1.5", "/home/blank/ws/session?since=1.5"):
        status, reply = chain.http("GET", path)
        assert status == 400 and reply["error"] == "since must be a whole number", reply

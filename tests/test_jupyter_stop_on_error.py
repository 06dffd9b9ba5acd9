"""``stop_on_error``: execute_requests queued behind one that fails are answered ``aborted``
(busy, an execute_reply of status "aborted", idle; no execute_input, nothing run), as
ipykernel answers them, so a Jupyter client's "Run All" stops at the failing cell; a request
sent after the error reply runs. Through the real chain (gateway, broker on SQLite, a
device with a sandboxed worker), for the built-in Python session and a Jupyter kernel
(ipykernel), over the Jupyter channels and over the worksheet's HTTP API; the aborted
replies are stored output: a client that reconnects gets them once, and a broker restarted
while they wait in the queue still aborts them.

The first cell waits on ``input()`` while the test queues the next ones: the gateway handles
a socket's messages one at a time (tornado awaits ``on_message``), so the answer reaches the
broker after they were accepted, whatever the machine's speed.

Before the fix the queued cells ran (every one of them printed)."""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from jupyter_ws import Channels
from kernels import require_kernel
from module_chain import module_chain
from test_chain_input import answer, wait_prompt
from test_jupyter_comms import start_kernel

FAILS = "input('go? ')\nraise ValueError('stop here')"
#: The same in R (IRkernel's readline() asks on stdin too).
FAILS_R = "x <- readline('go? ')\nstop('stop here')"


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One chain for the module, each test on a kernel (worksheet) of its own."""
    require_kernel("python3")
    require_kernel("ir")
    yield from module_chain(tmp_path_factory, "stop_on_error",
                            device=("--kernels", "python,python3,ir"))


def of(msgs: list[dict[str, Any]], request: dict[str, Any]) -> list[dict[str, Any]]:
    mine = request["header"]["msg_id"]
    return [m for m in msgs if m["parent_header"].get("msg_id") == mine]


def idle_of(request: dict[str, Any]) -> Any:
    mine = request["header"]["msg_id"]
    return lambda m: m["parent_header"].get("msg_id") == mine and m["msg_type"] == "status" \
        and m["content"]["execution_state"] == "idle"


def assert_aborted(msgs: list[dict[str, Any]]) -> None:
    """As ipykernel answers an aborted request: busy, the reply, idle, and nothing else."""
    assert [m["msg_type"] for m in msgs] == ["status", "execute_reply", "status"], msgs
    assert msgs[0]["content"]["execution_state"] == "busy"
    assert msgs[1]["content"]["status"] == "aborted", msgs[1]
    assert msgs[1]["channel"] == "shell"


async def run_all(ch: Channels, cells: list[str], fails: str = FAILS,
                  **content: Any) -> list[dict[str, Any]]:
    """The first cell (``fails``) waits for its prompt; the others are queued behind it;
    then the prompt is answered. The requests, in order."""
    first = await ch.send("execute_request", {"code": fails, "silent": False,
                                              "allow_stdin": True, **content})
    await ch.until(lambda m: m["msg_type"] == "input_request", timeout=60)
    rest = [await ch.send("execute_request", {"code": code, "silent": False})
            for code in cells]
    await ch.send("input_reply", {"value": "yes"}, channel="stdin")
    return [first, *rest]


@pytest.mark.parametrize("kernel", ["python", "python3", "ir"])
async def test_cells_queued_behind_an_error_are_aborted(chain, kernel: str) -> None:
    ch = await Channels.open(chain.port, start_kernel(chain, kernel))
    try:
        requests = await run_all(ch, ["print('second ran')", "print('third ran')"],
                                 FAILS_R if kernel == "ir" else FAILS)
        got = await ch.until(idle_of(requests[-1]), timeout=90)
        first = of(got, requests[0])
        reply = [m for m in first if m["msg_type"] == "execute_reply"]
        assert reply[0]["content"]["status"] == "error", first
        assert reply[0]["content"]["ename"] == ("ERROR" if kernel == "ir" else "ValueError")
        for request in requests[1:]:
            assert_aborted(of(got, request))
        assert "ran" not in json.dumps(got)
        # Sent after the error reply: it runs, and so does the one behind it.
        later = await ch.send("execute_request", {"code": "print('later ran')",
                                                  "silent": False})
        after = await ch.send("execute_request", {"code": "print('after ran')",
                                                  "silent": False})
        got = await ch.until(idle_of(after), timeout=60)
        for request, text in ((later, "later ran"), (after, "after ran")):
            msgs = of(got, request)
            assert text in json.dumps([m["content"] for m in msgs]), msgs
            assert [m["content"]["status"] for m in msgs
                    if m["msg_type"] == "execute_reply"] == ["ok"]
    finally:
        await ch.close()


async def test_stop_on_error_false_and_silent_errors_stop_nothing(chain) -> None:
    ch = await Channels.open(chain.port, start_kernel(chain, "python"))
    try:
        for content in ({"stop_on_error": False}, {"silent": True}):
            requests = await run_all(ch, ["print('second ran')"], **content)
            got = await ch.until(idle_of(requests[-1]), timeout=60)
            assert "".join(m["content"]["text"] for m in of(got, requests[1])
                           if m["msg_type"] == "stream") == "second ran\n", content
    finally:
        await ch.close()


async def test_aborted_replies_are_stored_and_replayed_once(chain) -> None:
    """A client that left before the replies came gets them when it reconnects (its
    session_id), once each.

    The prompt is answered (over HTTP, the cell's ``/input``) only once the client's socket
    is closed, so the replies surely come after it left. Answered on the socket right before
    its close (as before), they came to it before the close whenever the test process was
    held up some 50 ms between the two (a loaded machine): the client read them while
    closing, its position was rightly past them, and the reconnect waited for a replay of
    nothing until pytest's timeout."""
    kernel_id = start_kernel(chain, "python")
    client = uuid.uuid4().hex
    ch = await Channels.open(chain.port, kernel_id, client=client)
    first = await ch.send("execute_request", {"code": FAILS, "silent": False,
                                              "allow_stdin": True})
    await ch.until(lambda m: m["msg_type"] == "input_request", timeout=60)
    requests = [first, *[await ch.send("execute_request", {"code": code, "silent": False})
                         for code in ("print('second ran')", "print('third ran')")]]
    await ch.close()
    cell = f"anonymous/{kernel_id}/cell-{first['header']['msg_id']}"
    assert answer(chain, cell, "yes")[0] == 202
    ch = await Channels.open(chain.port, kernel_id, client=client)
    try:
        got = await ch.until(idle_of(requests[-1]), timeout=60)
        for request in requests[1:]:
            assert_aborted(of(got, request))
        # Nothing more of theirs comes (a request after them ends the wait).
        probe = await ch.send("execute_request", {"code": "print('probe')", "silent": False})
        got = await ch.until(idle_of(probe), timeout=60)
        assert all(not of(got, request) for request in requests), got
    finally:
        await ch.close()


def test_worksheet_cells_queued_behind_an_error_are_aborted(chain) -> None:
    """The worksheet's own API: its evaluates ask stop_on_error (gateway/cells.py), so a page
    that runs its cells in a row stops at the first that fails, as a notebook does."""
    ws = f"u/stop{uuid.uuid4().hex[:8]}"
    assert chain.evaluate(f"{ws}/1", FAILS)[0] == 202
    wait_prompt(chain, f"{ws}/1", timeout=60)
    for cell in ("2", "3"):
        assert chain.evaluate(f"{ws}/{cell}", f"print('cell {cell} ran')")[0] == 202
    assert answer(chain, f"{ws}/1", "yes")[0] == 202
    doc = chain.wait_done(f"{ws}/1", timeout=60)
    assert doc["status"] == "error" and doc["aborted"] is False
    for cell in ("2", "3"):
        doc = chain.wait_done(f"{ws}/{cell}", timeout=60)
        assert doc["status"] == "error" and doc["aborted"] is True, doc
        assert doc["output"] == {} and doc["execution_count"] is None, doc
    assert chain.evaluate(f"{ws}/4", "print('cell 4 ran')")[0] == 202
    doc = chain.wait_done(f"{ws}/4", timeout=60)
    assert doc["status"] == "done" and "cell 4 ran" in json.dumps(doc["output"]), doc
    assert doc["aborted"] is False


def test_cells_queued_while_no_device_runs_are_aborted_after_a_broker_restart(
        key_file, tmp_path, nodes) -> None:
    """The cells wait in the store (no device yet), the broker restarts, then a device comes:
    what each request queued behind is in the stored request, so the abort still holds."""
    from harness import Chain, wait_gateway_linked
    chain = Chain(key_file, f"sqlite:///{tmp_path / 'cellbus.db'}", nodes)
    chain.start_broker()
    chain.start_gateway()
    wait_gateway_linked(chain)
    assert chain.evaluate("u/ws/1", "raise ValueError('stop here')")[0] == 202
    for cell in ("2", "3"):
        assert chain.evaluate(f"u/ws/{cell}", f"print('cell {cell} ran')")[0] == 202
    assert chain.broker is not None
    chain.broker.stop()
    chain.start_broker()
    wait_gateway_linked(chain)
    chain.start_device()
    assert chain.wait_done("u/ws/1", timeout=60)["aborted"] is False
    for cell in ("2", "3"):
        doc = chain.wait_done(f"u/ws/{cell}", timeout=60)
        assert doc["status"] == "error" and doc["aborted"] is True, doc
        assert doc["output"] == {}, doc
    assert chain.evaluate("u/ws/4", "print('cell 4 ran')")[0] == 202
    assert chain.wait_done("u/ws/4", timeout=60)["status"] == "done"


async def test_run_all_stops_at_a_cell_that_fails_at_once(chain) -> None:
    """As a notebook's Run All: every cell sent at once, the first failing at once. The
    broker accepts them one at a time, so the first may end before the last is accepted;
    the gateway names what each was sent behind (the client had no reply yet). Here the
    broker is paused while the gateway reads them (a local reply after them says it has),
    so the first cannot end before the gateway has read them all, whatever the load; then
    the broker is resumed. Failed before (JupyterLab's Run All ran the cells after one that
    failed at once, tests/test_jupyterlab_browser.py)."""
    ch = await Channels.open(chain.port, start_kernel(chain, "python"))
    try:
        await ch.execute("warm = 1", timeout=60)  # the kernel is up: the first cell is fast
        probe = await ch.send("comm_info_request", {})  # the gateway answers these itself
        await ch.until(idle_of(probe))
        os.kill(chain.broker.proc.pid, signal.SIGSTOP)
        try:
            requests = [await ch.send("execute_request", {"code": code, "silent": False})
                        for code in ["1/0", *(f"print('cell {i} ran')" for i in range(2, 7))]]
            probe = await ch.send("comm_info_request", {})
            await ch.until(idle_of(probe))
        finally:
            os.kill(chain.broker.proc.pid, signal.SIGCONT)
        got = await ch.until(idle_of(requests[-1]), timeout=60)
        assert [m["content"]["status"] for m in of(got, requests[0])
                if m["msg_type"] == "execute_reply"] == ["error"]
        for request in requests[1:]:
            assert_aborted(of(got, request))
        assert "ran" not in json.dumps(got)
    finally:
        await ch.close()

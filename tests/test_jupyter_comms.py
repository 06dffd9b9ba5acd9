"""Comm messages between a channels client and a Jupyter kernel (ipykernel), both ways,
through the real chain: gateway, broker on SQLite, a device running the kernel in a
sandboxed worker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from jupyter_ws import Channels, stdout
from kernels import require_kernel
from module_chain import module_chain

#: A cell that makes the kernel echo whatever a comm of target "echo" receives.
ECHO_TARGET = """
def _echo(comm, open_msg):
    comm.send({"opened": open_msg["content"]["data"]})
    comm.on_msg(lambda msg: comm.send({"echo": msg["content"]["data"]}))
get_ipython().kernel.comm_manager.register_target("echo", _echo)
"""


@pytest.fixture(scope="module")
def ipykernel_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One chain for the module, each test on a kernel of its own (tests/module_chain.py)."""
    require_kernel("python3")
    yield from module_chain(tmp_path_factory, "comms", device=("--kernels", "python,python3"))


#: A comm target whose handler prints, then sleeps for ten minutes.
SLOW_TARGET = ("import time\n"
               "def _slow(comm, _):\n"
               "    comm.on_msg(lambda m: (print('handling', flush=True), time.sleep(600)))\n"
               "get_ipython().kernel.comm_manager.register_target('slow', _slow)")


async def slow_handler(ch: Channels) -> dict[str, Any]:
    """Make the kernel run SLOW_TARGET's handler (it printed: it sleeps now); its comm_msg."""
    await ch.execute(SLOW_TARGET, timeout=60)
    comm_id = uuid.uuid4().hex
    await ch.send("comm_open", {"comm_id": comm_id, "target_name": "slow", "data": {}})
    handled = await ch.send("comm_msg", {"comm_id": comm_id, "data": {}})
    await ch.until(lambda m: m["msg_type"] == "stream" and "handling" in m["content"]["text"])
    return handled


def start_kernel(chain: Any, name: str) -> str:
    status, doc = chain.http("POST", "/api/kernels", json.dumps({"name": name}).encode())
    assert status == 201, doc
    return str(doc["id"])


def comm_of(comm_id: str, msg_type: str) -> Any:
    return lambda m: m["msg_type"] == msg_type and m["content"].get("comm_id") == comm_id


async def test_client_comm_reaches_the_kernel_and_its_echo_comes_back(ipykernel_chain) -> None:
    """comm_open, comm_msg and comm_info_request from the client reach the kernel's shell;
    what the kernel's comm sends comes back on iopub, parented by the client's message."""
    kernel_id = start_kernel(ipykernel_chain, "python3")
    ch = await Channels.open(ipykernel_chain.port, kernel_id)
    try:
        done = await ch.execute(ECHO_TARGET, timeout=60)
        assert [m for m in done if m["msg_type"] == "error"] == [], done
        comm_id = uuid.uuid4().hex
        await ch.send("comm_open", {"comm_id": comm_id, "target_name": "echo",
                                    "data": {"hello": 1}})
        got = await ch.until(comm_of(comm_id, "comm_msg"))
        assert got[-1]["content"]["data"] == {"opened": {"hello": 1}}
        assert got[-1]["channel"] == "iopub"
        sent = await ch.send("comm_msg", {"comm_id": comm_id, "data": {"value": 42}})
        got = await ch.until(comm_of(comm_id, "comm_msg"))
        echo = got[-1]
        assert echo["content"]["data"] == {"echo": {"value": 42}}
        assert echo["parent_header"]["msg_id"] == sent["header"]["msg_id"]
        assert "cellbus" not in echo["metadata"]
        info = await ch.send("comm_info_request", {"target_name": "echo"})
        got = await ch.until(lambda m: m["msg_type"] == "comm_info_reply")
        assert got[-1]["channel"] == "shell"
        assert got[-1]["parent_header"]["msg_id"] == info["header"]["msg_id"]
        assert got[-1]["content"]["comms"] == {comm_id: {"target_name": "echo"}}
        await ch.send("comm_close", {"comm_id": comm_id, "data": {}})
        got = await ch.until(lambda m: m["msg_type"] == "status" and m["parent_header"].get(
            "msg_type") == "comm_close" and m["content"]["execution_state"] == "idle")
        info = await ch.send("comm_info_request", {})
        got = await ch.until(lambda m: m["msg_type"] == "comm_info_reply")
        assert got[-1]["content"]["comms"] == {}
    finally:
        await ch.close()


async def test_an_oversized_comm_message_never_reaches_the_kernel(ipykernel_chain) -> None:
    """A comm_msg over MAX_COMM_MESSAGE (but under the socket's frame limit) is refused at
    the broker: its echo never comes, the next message's does."""
    from protocol.msgtypes import MAX_COMM_MESSAGE
    kernel_id = start_kernel(ipykernel_chain, "python3")
    ch = await Channels.open(ipykernel_chain.port, kernel_id)
    try:
        await ch.execute(ECHO_TARGET, timeout=60)
        comm_id = uuid.uuid4().hex
        await ch.send("comm_open", {"comm_id": comm_id, "target_name": "echo", "data": {}})
        await ch.until(comm_of(comm_id, "comm_msg"))
        await ch.send("comm_msg", {"comm_id": comm_id, "data": {"big": "x" * MAX_COMM_MESSAGE}})
        await ch.send("comm_msg", {"comm_id": comm_id, "data": {"small": 1}})
        got = await ch.until(comm_of(comm_id, "comm_msg"), timeout=60)
        assert got[-1]["content"]["data"] == {"echo": {"small": 1}}
        assert [m for m in got if "big" in json.dumps(m["content"])] == []
    finally:
        await ch.close()


async def test_kernel_opened_comm_arrives_as_comm_open(ipykernel_chain) -> None:
    """A comm the kernel opens in a cell reaches the client as comm_open, then its messages."""
    kernel_id = start_kernel(ipykernel_chain, "python3")
    ch = await Channels.open(ipykernel_chain.port, kernel_id)
    try:
        msgs = await ch.execute('from comm import create_comm\n'
                                'c = create_comm(target_name="from_kernel", data={"n": 1})\n'
                                'c.send({"n": 2})', timeout=60)
        opened = [m for m in msgs if m["msg_type"] == "comm_open"]
        assert len(opened) == 1, msgs
        assert opened[0]["content"]["target_name"] == "from_kernel"
        assert opened[0]["content"]["data"] == {"n": 1}
        assert opened[0]["channel"] == "iopub"
        assert opened[0]["metadata"] == {}
        comm_id = opened[0]["content"]["comm_id"]
        sent = [m for m in msgs if comm_of(comm_id, "comm_msg")(m)]
        assert [m["content"]["data"] for m in sent] == [{"n": 2}]
    finally:
        await ch.close()


async def test_an_interrupt_stops_a_comm_handler_and_the_next_cell_runs(ipykernel_chain) -> None:
    """A comm handler that runs long holds the session like a cell; an interrupt (for the cell
    queued behind it) stops the handler in the kernel, and that cell then runs."""
    kernel_id = start_kernel(ipykernel_chain, "python3")
    ch = await Channels.open(ipykernel_chain.port, kernel_id)
    try:
        await slow_handler(ch)
        after = await ch.send("execute_request", {"code": "print('after')", "silent": False})
        status, body = ipykernel_chain.http("POST", f"/api/kernels/{kernel_id}/interrupt", b"")
        assert status == 204, body
        got = await ch.until(lambda m: m["msg_type"] == "status" and m["content"][
            "execution_state"] == "idle" and m["parent_header"].get("msg_id") == after[
            "header"]["msg_id"])
        assert stdout([m for m in got if m["parent_header"].get("msg_id") == after[
            "header"]["msg_id"]]) == "after\n"
    finally:
        await ch.close()


async def test_an_interrupt_stops_a_comm_handler_with_no_cell_queued(ipykernel_chain) -> None:
    """Jupyter's interrupt interrupts what the kernel runs, cell or not: a widget callback
    that loops, with no cell behind it, ends (its idle comes) and the kernel goes on."""
    kernel_id = start_kernel(ipykernel_chain, "python3")
    ch = await Channels.open(ipykernel_chain.port, kernel_id)
    try:
        handled = await slow_handler(ch)
        status, doc = ipykernel_chain.http("GET", f"/api/kernels/{kernel_id}")
        assert status == 200 and doc["execution_state"] == "idle", doc  # no cell runs
        status, body = ipykernel_chain.http("POST", f"/api/kernels/{kernel_id}/interrupt", b"")
        assert status == 204, body
        await ch.until(lambda m: m["msg_type"] == "status" and m["content"][
            "execution_state"] == "idle" and m["parent_header"].get("msg_id") == handled[
            "header"]["msg_id"], timeout=20)
        assert stdout(await ch.execute("print('on')")) == "on\n"
    finally:
        await ch.close()


def handler_target(body: str) -> str:
    """A cell that registers the comm target "h", whose handler prints, then runs ``body``."""
    return ("import os, signal, time\n"
            "def _h(comm, _):\n"
            f"    comm.on_msg(lambda m: (print('handling', flush=True), {body}))\n"
            "get_ipython().kernel.comm_manager.register_target('h', _h)\nx = 1")


async def run_handler(ch: Channels, body: str) -> dict[str, Any]:
    """Make the kernel run handler_target(body)'s handler, once it printed; its comm_msg."""
    await ch.execute(handler_target(body), timeout=60)
    comm_id = uuid.uuid4().hex
    await ch.send("comm_open", {"comm_id": comm_id, "target_name": "h", "data": {}})
    handled = await ch.send("comm_msg", {"comm_id": comm_id, "data": {}})
    await ch.until(lambda m: m["msg_type"] == "stream" and "handling" in m["content"]["text"])
    return handled


def idle_of(request: dict[str, Any]) -> Any:
    return lambda m: m["msg_type"] == "status" and m["content"]["execution_state"] == "idle" \
        and m["parent_header"].get("msg_id") == request["header"]["msg_id"]


async def test_a_comm_handler_that_ignores_an_interrupt_ends_within_the_bound(
        ipykernel_chain) -> None:
    """Tests that a widget callback that ignores SIGINT is stopped as a cell is, the kernel
    restarted INTERRUPT_GRACE after the interrupt, saying so: it held the session until
    --exec-timeout (5 min), and the device then ended the whole worker."""
    from session.jupyter import INTERRUPT_GRACE
    kernel_id = start_kernel(ipykernel_chain, "python3")
    ch = await Channels.open(ipykernel_chain.port, kernel_id)
    try:
        handled = await run_handler(ch, "signal.signal(signal.SIGINT, signal.SIG_IGN), "
                                        "[time.sleep(0.01) for _ in iter(int, 1)]")
        asked = time.monotonic()
        status, body = ipykernel_chain.http("POST", f"/api/kernels/{kernel_id}/interrupt", b"")
        assert status == 204, body
        got = await ch.until(idle_of(handled), timeout=INTERRUPT_GRACE + 10)
        assert time.monotonic() - asked < INTERRUPT_GRACE + 1.5
        said = "".join(m["content"]["text"] for m in got if m["msg_type"] == "stream"
                       and m["content"]["name"] == "stderr")
        assert "did not stop a comm_msg's handler when interrupted, and was restarted" in said
        assert stdout(await ch.execute("print('x' in globals())", timeout=60)) == "False\n"
    finally:
        await ch.close()


async def test_a_kernel_that_dies_in_a_comm_handler_is_fresh_for_the_next_cell(
        ipykernel_chain) -> None:
    """Tests that a kernel that ends in a widget callback is started again then: the next
    cell ran in the dead kernel and failed with KernelDied ("ended during this cell")."""
    kernel_id = start_kernel(ipykernel_chain, "python3")
    ch = await Channels.open(ipykernel_chain.port, kernel_id)
    try:
        handled = await run_handler(ch, "time.sleep(0.5), os._exit(3)")
        got = await ch.until(idle_of(handled), timeout=20)
        said = "".join(m["content"]["text"] for m in got if m["msg_type"] == "stream"
                       and m["content"]["name"] == "stderr")
        assert "kernel ended during a comm_msg (it exited with code 3)" in said, said
        after = await ch.execute("print('x' in globals())", timeout=60)
        assert [m for m in after if m["msg_type"] == "error"] == []
        assert stdout(after) == "False\n"
    finally:
        await ch.close()


async def test_a_kernel_comm_missed_while_away_is_replayed(ipykernel_chain) -> None:
    """Comm output is stored with its seq: a client that comes back with its session_id gets
    the comm_open and comm_msg another client's cell caused while it was away."""
    kernel_id = start_kernel(ipykernel_chain, "python3")
    away = await Channels.open(ipykernel_chain.port, kernel_id)
    await away.execute("1")
    await away.close()
    other = await Channels.open(ipykernel_chain.port, kernel_id)
    try:
        await other.execute('from comm import create_comm\n'
                            'c = create_comm(target_name="t", data={"n": 1})\nc.send({"n": 2})',
                            timeout=60)
    finally:
        await other.close()
    back = await Channels.open(ipykernel_chain.port, kernel_id, client=away.client)
    try:
        got = await back.until(lambda m: m["msg_type"] == "comm_msg")
        opened = [m for m in got if m["msg_type"] == "comm_open"]
        assert [m["content"]["data"] for m in opened] == [{"n": 1}]
        assert got[-1]["content"] == {"comm_id": opened[0]["content"]["comm_id"],
                                      "data": {"n": 2}}
    finally:
        await back.close()


async def test_ipywidgets_slider_value_round_trip(ipykernel_chain) -> None:
    """An ipywidgets IntSlider: its model arrives as comm_open (with the widget protocol's
    version in metadata, as widget managers check), a value the client sets reaches the
    kernel's slider, and a value the kernel sets reaches the client."""
    kernel_id = start_kernel(ipykernel_chain, "python3")
    ch = await Channels.open(ipykernel_chain.port, kernel_id)
    try:
        msgs = await ch.execute("import ipywidgets as w\ns = w.IntSlider(value=3)\n"
                                "display(s)", timeout=60)
        opened = [m for m in msgs if m["msg_type"] == "comm_open" and m["content"]["data"][
            "state"].get("_model_name") == "IntSliderModel"]
        assert len(opened) == 1, [m["msg_type"] for m in msgs]
        assert opened[0]["content"]["target_name"] == "jupyter.widget"
        assert opened[0]["metadata"]["version"].split(".")[0] == "2"
        assert opened[0]["content"]["data"]["state"]["value"] == 3
        comm_id = opened[0]["content"]["comm_id"]
        view = next(m for m in msgs if m["msg_type"] == "display_data")
        assert view["content"]["data"]["application/vnd.jupyter.widget-view+json"][
            "model_id"] == comm_id
        moved = await ch.send("comm_msg", {"comm_id": comm_id, "data": {
            "method": "update", "state": {"value": 7}, "buffer_paths": []}})
        await ch.until(lambda m: m["msg_type"] == "status" and m["content"][
            "execution_state"] == "idle" and m["parent_header"].get("msg_id") == moved[
            "header"]["msg_id"])
        assert stdout(await ch.execute("print(s.value)")) == "7\n"
        msgs = await ch.execute("s.value = 9")
        updates = [m["content"]["data"] for m in msgs if comm_of(comm_id, "comm_msg")(m)]
        assert {"method": "update", "state": {"value": 9}, "buffer_paths": []} in updates, \
            updates
    finally:
        await ch.close()


async def test_builtin_session_closes_a_comm_at_once(ipykernel_chain) -> None:
    """The built-in Python session has no comm targets: comm_open is answered comm_close."""
    kernel_id = start_kernel(ipykernel_chain, "python")
    ch = await Channels.open(ipykernel_chain.port, kernel_id)
    try:
        await ch.execute("x = 1")
        comm_id = uuid.uuid4().hex
        await ch.send("comm_open", {"comm_id": comm_id, "target_name": "echo", "data": {}})
        got = await ch.until(comm_of(comm_id, "comm_close"))
        assert got[-1]["channel"] == "iopub"
    finally:
        await ch.close()

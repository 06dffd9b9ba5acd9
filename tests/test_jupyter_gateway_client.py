"""jupyter_server's ``GatewayKernelManager`` and ``GatewayKernelClient`` (from PyPI) pointed at
cellbus as at a Kernel Gateway, used as their users do, with nothing of cellbus but its URL:
nbclient runs a notebook through them (what ``jupyter nbconvert --execute`` runs), and a
cell's ``input()`` is answered with jupyter_client's ``KernelClient.input``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
from jupyter_server.gateway.gateway_client import GatewayClient
from jupyter_server.gateway.managers import GatewayKernelManager
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from kernels import require_kernel
from module_chain import module_chain


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A chain with the built-in session and ipykernel, as the one GatewayClient's URL."""
    require_kernel("python3")
    for chain in module_chain(tmp_path_factory, "gwclient", device=("--kernels",
                                                                      "python,python3")):
        client = GatewayClient.instance()
        client.url = f"http://127.0.0.1:{chain.port}"
        client.request_timeout = 60
        try:
            yield chain
        finally:
            client.url = None


def outputs(cell: Any) -> list[tuple[str, Any]]:
    """A cell's outputs as (type, what it holds: text, MIME types or the error's name)."""
    return [(o.output_type, o.get("text") or sorted(o.get("data", {})) or o.get("ename"))
            for o in cell.outputs]


async def idle(chain: Any, kernel_id: str, timeout: float = 60) -> None:
    """Wait until the kernel's REST model says it is idle."""
    async with asyncio.timeout(timeout):
        while chain.http("GET", f"/api/kernels/{kernel_id}")[1]["execution_state"] != "idle":
            await asyncio.sleep(0.1)


async def test_nbclient_runs_a_notebook_through_a_gateway_kernel_manager(gateway: Any) -> None:
    """Print, rich display, a result, a matplotlib figure, an error and a cell after it: each
    cell's outputs in the notebook as a local ipykernel gives them (``python3``, the
    manager's default kernel). Failed before: every request was refused ("the header is
    incomplete": the client dates its headers with a number), then the figure was missing
    (ipykernel ran with the built-in session's matplotlib backend)."""
    nb = new_notebook(cells=[
        new_code_cell("print('hello')\nx = 41"),
        new_code_cell("from IPython.display import HTML, display\n"
                      "display(HTML('<b>bold</b>'))\nx + 1"),
        new_code_cell("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()"),
        new_code_cell("1/0"),
        new_code_cell("print('after the error')"),
    ])
    km = GatewayKernelManager()
    client = NotebookClient(nb, km=km, timeout=60, allow_errors=True)
    try:
        await asyncio.wait_for(client.async_execute(), 120)
    finally:
        await km.shutdown_kernel()  # the notebook's client leaves a kernel it did not start
    nbformat.validate(nb)
    got = [outputs(cell) for cell in nb.cells]
    assert got == [
        [("stream", "hello\n")],
        [("display_data", ["text/html", "text/plain"]), ("execute_result", ["text/plain"])],
        [("display_data", ["image/png", "text/plain"])],
        [("error", "ZeroDivisionError")],
        [("stream", "after the error\n")],
    ], got
    assert [cell.execution_count for cell in nb.cells] == [1, 2, 3, 4, 5]


async def test_input_is_answered_with_the_kernel_clients_input(gateway: Any) -> None:
    """``kc.input(text)`` answers the cell's ``input()``: the prompt reaches this client
    (whose socket URL names no session_id) on stdin, and the answer (which names no parent
    prompt) reaches the cell. Failed before: no input_request came to this client."""
    km = GatewayKernelManager()
    await km.start_kernel(kernel_name="python")
    kc = km.client()
    await kc.start_channels()
    try:
        msg_id = kc.execute("name = input('who? ')\nprint('hi', name)", allow_stdin=True)
        prompt = await kc.get_stdin_msg(timeout=30)
        assert prompt["msg_type"] == "input_request", prompt
        assert prompt["content"]["prompt"] == "who? "
        assert prompt["parent_header"]["msg_id"] == msg_id
        kc.input("ann")
        reply = await kc.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "ok", reply["content"]
        text = ""
        while "hi ann" not in text:
            msg = await kc.get_iopub_msg(timeout=30)
            if msg["msg_type"] == "stream" and msg["parent_header"]["msg_id"] == msg_id:
                text += msg["content"]["text"]
    finally:
        kc.stop_channels()
        await km.shutdown_kernel()


@pytest.mark.parametrize("kernel", ["python3", "python"])
async def test_history_is_the_kernels_own(gateway: Any, kernel: str) -> None:
    """``kc.history()`` gets the kernel's own history of the session's cells (what a Jupyter
    console's Up arrow shows): ipykernel's, and the built-in session's (session/history.py).
    Failed before: the gateway answered every history_request itself, with no history; then
    the built-in session still answered none."""
    km = GatewayKernelManager()
    await km.start_kernel(kernel_name=kernel)
    kc = km.client()
    await kc.start_channels()
    try:
        executed = kc.execute("answer = 6 * 7")
        while (await kc.get_shell_msg(timeout=60))["parent_header"].get("msg_id") != executed:
            pass
        asked = kc.history(hist_access_type="tail", n=10, raw=True, output=False)
        reply = await kc.get_shell_msg(timeout=30)
        assert reply["msg_type"] == "history_reply"
        assert reply["parent_header"]["msg_id"] == asked
        assert [entry[2] for entry in reply["content"]["history"]] == ["answer = 6 * 7"], \
            reply["content"]
        executed = kc.execute("answer + 1")
        while (await kc.get_shell_msg(timeout=60))["parent_header"].get("msg_id") != executed:
            pass
        kc.history(hist_access_type="tail", n=1, raw=True, output=True)
        reply = await kc.get_shell_msg(timeout=30)
        # (IPython keeps no outputs by default: None; the built-in session the result's text)
        assert [entry[1:] for entry in reply["content"]["history"]] == [
            [2, ["answer + 1", "43" if kernel == "python" else None]]], reply["content"]
        kc.history(hist_access_type="search", pattern="answer =*", n=5, raw=True, output=False)
        reply = await kc.get_shell_msg(timeout=30)
        assert [entry[2] for entry in reply["content"]["history"]] == ["answer = 6 * 7"]
    finally:
        kc.stop_channels()
        await km.shutdown_kernel()


async def test_an_update_of_a_display_updates_it_and_adds_nothing(gateway: Any) -> None:
    """``display(..., display_id=True)`` then ``handle.update(...)`` (the common way to show
    live progress): nbclient replaces the first cell's output, and the updating cell has
    none, as with a local ipykernel. Failed before: the kernel's ``update_display_data``
    came as a ``display_data`` (the same content), which a Jupyter client adds as a new
    output (in JupyterLab, one more copy per update) besides updating the old ones."""
    nb = new_notebook(cells=[
        new_code_cell("from IPython.display import HTML, display\n"
                      "handle = display(HTML('<b>one</b>'), display_id=True)"),
        new_code_cell("handle.update(HTML('<b>two</b>'))"),
    ])
    km = GatewayKernelManager()
    client = NotebookClient(nb, km=km, timeout=60)
    try:
        await asyncio.wait_for(client.async_execute(), 120)
    finally:
        await km.shutdown_kernel()
    nbformat.validate(nb)
    assert [[o.get("data", {}).get("text/html") for o in cell.outputs] for cell in nb.cells] \
        == [["<b>two</b>"], []], [cell.outputs for cell in nb.cells]


async def test_kernel_info_is_the_running_kernels_own(gateway: Any) -> None:
    """``kc.kernel_info()`` answers with what the kernel itself says (ipykernel's
    implementation, banner and language_info, as jupyter_server passes them on), and the
    built-in session's with its own. Failed before: the gateway answered from the
    kernelspec ("implementation": "cellbus" and a made-up banner for ipykernel too)."""
    import IPython
    for name, implementation in (("python3", "ipython"), ("python", "cellbus")):
        km = GatewayKernelManager()
        await km.start_kernel(kernel_name=name)
        kc = km.client()
        await kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            await idle(gateway, km.kernel_id)  # (a kernel that starts is asked nothing yet)
            asked = kc.kernel_info()
            while (reply := await kc.get_shell_msg(timeout=30))["parent_header"].get(
                    "msg_id") != asked:
                pass
            info = reply["content"]
            assert reply["msg_type"] == "kernel_info_reply" and info["status"] == "ok", info
            assert info["implementation"] == implementation, info
            assert info["language_info"]["name"] == "python", info
            assert info["language_info"]["pygments_lexer"] == "ipython3", info
            assert info["language_info"]["nbconvert_exporter"] == "python", info
            if name == "python3":
                assert info["implementation_version"] == IPython.__version__, info
                assert "IPython" in info["banner"], info
        finally:
            kc.stop_channels()
            await km.shutdown_kernel()


def test_a_patch_to_another_kernel_name_starts_it_for_the_session(gateway: Any) -> None:
    """``PATCH /api/sessions/ID {"kernel": {"name": ...}}`` (JupyterLab's Change Kernel)
    starts a kernel of that name for the session and shuts the old one down, as
    jupyter_server does: the session keeps its id and path, its kernel has a new id (which
    JupyterLab connects to), and GET, the listing and DELETE of the session follow it.
    Failed before: 400, "a session's kernel cannot be changed here"."""
    import json
    status, made = gateway.http("POST", "/api/sessions", json.dumps({
        "path": "change.ipynb", "name": "change.ipynb", "type": "notebook",
        "kernel": {"name": "python"}}).encode())
    assert status == 201, made
    sid, old = made["id"], made["kernel"]["id"]
    status, doc = gateway.http("PATCH", f"/api/sessions/{sid}", json.dumps(
        {"kernel": {"name": "python3"}}).encode())
    assert status == 200, doc
    new = doc["kernel"]["id"]
    assert (doc["id"], doc["path"], doc["kernel"]["name"]) == (sid, "change.ipynb",
                                                               "python3"), doc
    assert new != old
    assert gateway.http("GET", f"/api/kernels/{old}")[0] == 404, "the old kernel is shut down"
    status, got = gateway.http("GET", f"/api/sessions/{sid}")
    assert status == 200 and got["kernel"]["id"] == new and got["path"] == "change.ipynb", got
    status, listed = gateway.http("GET", "/api/sessions")
    assert [s["kernel"]["id"] for s in listed if s["id"] == sid] == [new], listed
    status, doc = gateway.http("PATCH", f"/api/sessions/{sid}", json.dumps(
        {"path": "renamed.ipynb", "kernel": {"id": new}}).encode())
    assert status == 200 and doc["kernel"]["id"] == new, doc
    assert gateway.http("DELETE", f"/api/sessions/{sid}")[0] == 204
    assert gateway.http("GET", f"/api/kernels/{new}")[0] == 404
    assert gateway.http("GET", f"/api/sessions/{sid}")[0] == 404

"""A stock jupyter_server from PyPI, started with ``--gateway-url`` pointing at cellbus, driven
through its own REST and WebSocket API as a notebook page drives it: its ``GatewayClient``
is the client here, none of whose code this project wrote."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_servers import TOKEN, call, serving
from jupyter_ws import Channels, stdout
from kernels import require_kernel


@pytest.fixture
def jupyter_server(running_chain, tmp_path: Path) -> Iterator[int]:
    """jupyter_server on a free port whose kernels are cellbus's; yields its port."""
    with serving("jupyter_server", running_chain.port, tmp_path) as port:
        yield port


async def test_a_notebook_through_jupyter_servers_gateway_client(jupyter_server: int,
                                                                running_chain) -> None:
    """Print, an error, a plot, interrupt and restart, each as the notebook sees it."""
    port = jupyter_server
    status, specs = await asyncio.to_thread(call, port, "GET", "/api/kernelspecs")
    assert status == 200 and "python" in specs["kernelspecs"], specs
    status, session = await asyncio.to_thread(call, port, "POST", "/api/sessions", {
        "path": "demo.ipynb", "name": "demo.ipynb", "type": "notebook",
        "kernel": {"name": "python"}})
    assert status == 201, session
    kernel_id = session["kernel"]["id"]
    status, ours = running_chain.http("GET", f"/api/kernels/{kernel_id}")
    assert status == 200, "the kernel is cellbus's"
    ch = await Channels.open(port, kernel_id, token=TOKEN)
    try:
        assert stdout(await ch.execute("x = 6 * 7\nprint('hello from cellbus')")) == \
            "hello from cellbus\n"
        error = [m for m in await ch.execute("1/0") if m["msg_type"] == "error"]
        assert error and error[0]["content"]["ename"] == "ZeroDivisionError"
        plot = await ch.execute("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\n"
                                "plt.show()")
        assert any("image/png" in m["content"].get("data", {}) for m in plot
                   if m["msg_type"] == "display_data"), [m["msg_type"] for m in plot]
        request = await ch.send("execute_request", {"code": "import time\nprint('sleeping', "
                                                    "flush=True)\ntime.sleep(60)"})
        await ch.until(lambda m: m["msg_type"] == "stream")
        status, _ = await asyncio.to_thread(call, port, "POST",
                                            f"/api/kernels/{kernel_id}/interrupt", {})
        assert status == 204
        got = await ch.until(lambda m: m["msg_type"] == "execute_reply" and m[
            "parent_header"].get("msg_id") == request["header"]["msg_id"])
        assert got[-1]["content"]["status"] == "error"
        assert got[-1]["content"]["ename"] == "KeyboardInterrupt"
        status, _ = await asyncio.to_thread(call, port, "POST",
                                            f"/api/kernels/{kernel_id}/restart", {})
        assert status == 200
        after = await ch.execute("print(x)")
        assert [m["content"]["ename"] for m in after if m["msg_type"] == "error"] == \
            ["NameError"], "a restart starts a fresh session"
    finally:
        await ch.close()
    status, _ = await asyncio.to_thread(call, port, "DELETE", f"/api/sessions/{session['id']}")
    assert status == 204
    assert running_chain.http("GET", f"/api/kernels/{kernel_id}")[0] == 404


async def test_a_comm_with_buffers_keeps_gateway_client_relaying(chain, tmp_path: Path
                                                                ) -> None:
    """jupyter_server's GatewayClient reads a text frame only (it decodes a binary one as
    UTF-8 and stops relaying at the error): without --legacy-buffers a kernel comm's message
    with buffers reaches it as JSON text without them, and the kernel's output goes on."""
    require_kernel("python3")
    chain.start_broker()
    chain.start_device("--kernels", "python,python3")
    chain.start_gateway()
    with serving("jupyter_server", chain.port, tmp_path) as port:
        await comm_with_buffers(port)


async def comm_with_buffers(port: int) -> None:
    """Through the Jupyter server at ``port``: a python3 kernel's comm sends buffers, then
    the kernel prints."""
    status, session = await asyncio.to_thread(call, port, "POST", "/api/sessions", {
        "path": "w.ipynb", "name": "w.ipynb", "type": "notebook",
        "kernel": {"name": "python3"}})
    assert status == 201, session
    ch = await Channels.open(port, session["kernel"]["id"], token=TOKEN)
    try:
        msgs = await ch.execute("from comm import create_comm\n"
                                "c = create_comm(target_name='t', data={})\n"
                                "c.send({'n': 2}, buffers=[b'\\xff\\x00'])\nprint('sent')",
                                timeout=60)
        assert [m["content"]["data"] for m in msgs if m["msg_type"] == "comm_msg"] == \
            [{"n": 2}]
        assert stdout(msgs) == "sent\n"
        assert stdout(await ch.execute("print('after')", timeout=20)) == "after\n"
    finally:
        await ch.close()

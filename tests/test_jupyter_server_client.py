"""A stock jupyter_server from PyPI, started with ``--gateway-url`` pointing at cellbus, driven
through its own REST and WebSocket API as a notebook page drives it: its ``GatewayClient``
is the client here, none of whose code this project wrote."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import free_port
from jupyter_ws import Channels, stdout

TOKEN = "jupyter-server-test-token"


@pytest.fixture
def jupyter_server(running_chain, tmp_path: Path) -> Iterator[int]:
    """jupyter_server on a free port whose kernels are cellbus's; yields its port."""
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log = open(tmp_path / "jupyter_server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", "--allow-root", f"--IdentityProvider.token={TOKEN}",
         f"--ServerApp.root_dir={tmp_path}",
         f"--gateway-url=http://127.0.0.1:{running_chain.port}",
         "--GatewayClient.request_timeout=60"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while call(port, "GET", "/api")[0] != 200:
            assert proc.poll() is None, (tmp_path / "jupyter_server.log").read_text()
            assert time.monotonic() < deadline, "jupyter_server did not start in 60 s"
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method=method,
        headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
        e.close()
    except OSError:
        return 0, None
    return status, json.loads(raw) if raw else None


async def test_a_notebook_through_jupyter_servers_gateway_client(jupyter_server: int,
                                                                running_chain) -> None:
    """Print, an error, a plot, interrupt and restart, each as the notebook sees it."""
    port = jupyter_server
    status, specs = await asyncio.to_thread(call, port, "GET", "/api/kernelspecs")
    assert status == 200 and "python3" in specs["kernelspecs"], specs
    status, session = await asyncio.to_thread(call, port, "POST", "/api/sessions", {
        "path": "demo.ipynb", "name": "demo.ipynb", "type": "notebook",
        "kernel": {"name": "python3"}})
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

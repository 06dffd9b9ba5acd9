"""A stock jupyter_server or JupyterLab (from PyPI) with ``--gateway-url`` pointing at a
cellbus gateway, for the tests of gateway/jupyter/ with clients this project did not write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import free_port

TOKEN = "jupyter-server-test-token"


@contextmanager
def serving(app: str, gateway_port: int, root: Path) -> Iterator[int]:
    """``python -m APP`` (jupyter_server or jupyterlab) serving ``root`` on a free port,
    its kernels on the cellbus gateway at ``gateway_port``; yields its port."""
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / ".config"),
           "JUPYTER_DATA_DIR": str(root / ".data"),
           "JUPYTER_RUNTIME_DIR": str(root / ".runtime")}
    log_path = root / f"{app}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", app, "--no-browser", f"--port={port}", "--ip=127.0.0.1",
             "--allow-root", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
             f"--gateway-url=http://127.0.0.1:{gateway_port}",
             "--GatewayClient.request_timeout=60"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
        try:
            deadline = time.monotonic() + 90
            while call(port, "GET", "/api")[0] != 200:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, f"{app} did not start in 90 s"
                time.sleep(0.1)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """(status, decoded JSON) of one request to the Jupyter server with its token; (0,
    None) while it does not listen yet."""
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

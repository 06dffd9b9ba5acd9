"""@jupyterlab/services (npm) in Node, with the ``ws`` package, against cellbus's Jupyter API:
a client cut off mid-cell reconnects by itself with its client id, and a new client joins
while it is away; each counts every line the cell printed (tests/jupyter_node/)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from harness import ROOT

NODE_DIR = ROOT / "tests" / "jupyter_node"


@pytest.fixture
def node() -> str:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@jupyterlab" / "services").is_dir():
        pytest.skip("needs node and `npm ci` in tests/jupyter_node (bin/test does both)")
    return node


def test_lines_arrive_once_each_after_a_cut_and_to_a_new_client(running_chain, node: str) -> None:
    """All 8 lines, each exactly once, to the client that was cut off (same client id) and
    to the client that joined mid-cell (new client id)."""
    out = subprocess.run([node, "reconnect.js", f"http://127.0.0.1:{running_chain.port}"],
                         cwd=NODE_DIR, capture_output=True, text=True, timeout=50)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    lines = [f"line {i}" for i in range(8)]
    assert got["same"] == lines, got
    assert got["new"] == lines, got


def test_every_shell_request_is_done(running_chain, node: str) -> None:
    """Each request KernelConnection makes on the shell channel is done (its future has the
    reply and the idle status of that request), those the gateway answers itself too.
    Failed before: history (and comm_info for the built-in session) got a reply but no
    busy/idle, so their futures never ended."""
    out = subprocess.run([node, "requests.js", f"http://127.0.0.1:{running_chain.port}",
                          "python"], cwd=NODE_DIR, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    got = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))
    assert got == {name: f"{name}_reply" for name in (
        "kernel_info", "execute", "complete", "inspect", "is_complete", "history",
        "comm_info")}, got

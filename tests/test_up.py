"""``bin/cellbus up``: one command runs the whole system, and stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
import urllib.request
from pathlib import Path

from harness import NodeProcess, free_port


def children_of(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


def test_up_runs_the_chain_and_stops_every_node(tmp_path: Path, nodes) -> None:
    port = free_port()
    up = NodeProcess("up", "--port", str(port), "--devices", "2",
                     "--store", f"sqlite:///{tmp_path / 'up.db'}",
                     env={"XDG_RUNTIME_DIR": str(tmp_path)})  # its state file stays here
    nodes.append(up)
    up.wait_for_log(rf"cellbus is up: http://127.0.0.1:{port}/", timeout=60)
    base = f"http://127.0.0.1:{port}/home/me/ws/1"
    req = urllib.request.Request(f"{base}/evaluate", data=json.dumps({"input": "print(6*7)"})
                                 .encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 202
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/update?wait=5", timeout=10) as resp:
            doc = json.load(resp)
        if doc["status"] == "done":
            break
    assert doc["output"]["stdout_0"]["content"] == "42\n"

    kids = children_of(up.proc.pid)
    assert len(kids) == 4  # broker, two devices, gateway
    key_file = next(arg for pid in kids for arg in
                    Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:]
                    if arg.endswith(b"bus.key"))
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600

    assert up.stop(signal.SIGTERM, timeout=30) == 0
    for pid in kids:
        assert (not Path(f"/proc/{pid}").exists()
                or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2])
    assert not os.path.exists(key_file)  # the runtime directory is removed
    assert "Traceback" not in up.log
    up.wait_for_log(r"broker stopped")

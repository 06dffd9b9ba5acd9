"""A Jupyter kernel slow to answer kernel_info, in a worker of its own: its start waits for
its answer without heaping requests on it."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from kernels import require_kernel
from test_session_worker import Worker, reply, stream_text

KERNEL = Path(__file__).with_name("slow_info_kernel.py")


def test_a_kernel_slow_to_answer_kernel_info_is_asked_once(tmp_path: Path) -> None:
    """Tests that a kernel that takes 2 s per kernel_info_request starts in about that and
    is asked once or twice: the start asked again every second until one was answered, and
    then once more; the kernel answered each in turn, so the first cell waited about 2 s for
    each second of the first answer (17 s for 3 s; one of 10 s never started)."""
    require_kernel("python3")  # ipykernel
    folder = tmp_path / "kernels" / "slow"
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, str(KERNEL), "-f", "{connection_file}"],
        "display_name": "Slow", "language": "python", "env": {"INFO_DELAY": "2"}}))
    env = {**os.environ, "TMPDIR": str(tmp_path), "JUPYTER_PATH": str(tmp_path),
           "PYTHONPATH": str(KERNEL.parent)}
    started = time.monotonic()
    worker = Worker(tmp_path, "--backend", "slow", env=env)
    worker.sock.settimeout(60)
    try:
        records = worker.execute("print(type(get_ipython().kernel).info_requests)")
        took = time.monotonic() - started
        assert reply(records)["status"] == "ok", records
        assert int(stream_text(records)) <= 2, stream_text(records)
        assert took < 8, took
    finally:
        worker.close()

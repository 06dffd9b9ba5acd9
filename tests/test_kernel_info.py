"""A Jupyter kernel slow to answer kernel_info, in a worker of its own: its start waits for
its answer without heaping requests on it."""

from __future__ import annotations

import json
import os
import sys
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
    worker = Worker(tmp_path, "--backend", "slow", env=env)
    worker.sock.settimeout(60)
    try:
        # (timed in the kernel, from the first request: the worker's and the kernel's own
        # start, imports, took 8.8 s in all once on a loaded machine)
        records = worker.execute("import time\nk = type(get_ipython().kernel)\n"
                                 "print(k.info_requests, time.monotonic() - k.first_info)")
        assert reply(records)["status"] == "ok", records
        asked, took = stream_text(records).split()
        assert int(asked) <= 2, asked
        # 2 s for each one asked, answered in turn, and then the cell
        assert float(took) < 2 * int(asked) + 2, (asked, took)
    finally:
        worker.close()

"""A Jupyter kernel that does not stop when interrupted, in a worker of its own: the bound
after which it is restarted and its cell ends, as its kernelspec sets it."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from kernels import require_kernel
from test_session_worker import Worker, of_type, reply, stream_text

IGNORES = ("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
           "print('go', flush=True)\nwhile True: time.sleep(0.01)")


def kernelspec(root: Path, name: str, metadata: Any,
               launch: tuple[str, ...] = ("-m", "ipykernel_launcher")) -> Path:
    """A JUPYTER_PATH folder with an ipykernel kernelspec ``name`` of ``metadata``
    (``launch``: what the venv's Python runs)."""
    folder = root / "kernels" / name
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, *launch, "-f", "{connection_file}"],
        "display_name": name, "language": "python", "metadata": metadata}))
    return root


def interrupt_running(worker: Worker, code: str) -> tuple[float, list[dict[str, Any]]]:
    """Run ``code`` until it prints, then interrupt the worker as the device's Stop does:
    the seconds until the cell ended, and its records from then."""
    worker.submit(code)
    while (record := worker.link.recv()) is None or record["msg_type"] != "stream":
        assert record is not None, worker.stderr()
    asked = time.monotonic()
    worker.proc.send_signal(signal.SIGINT)
    records = worker.collect()
    return time.monotonic() - asked, records


def test_a_kernelspec_sets_how_long_an_interrupt_waits(tmp_path: Path) -> None:
    """Tests that a kernelspec's ``metadata.cellbus.interrupt_grace`` is the time after which
    a kernel that ignores an interrupt is restarted and its cell ends (here 1 s, not the 5 s
    default), and that the next cell runs in the fresh kernel."""
    require_kernel("python3")
    env = {**os.environ, "TMPDIR": str(tmp_path), "JUPYTER_PATH": str(kernelspec(
        tmp_path, "quick", {"cellbus": {"interrupt_grace": 1}}))}
    worker = Worker(tmp_path, "--backend", "quick", env=env)
    worker.sock.settimeout(60)
    try:
        records = worker.execute("x = 1")
        assert reply(records)["status"] == "ok", records
        took, records = interrupt_running(worker, IGNORES)
        assert 1.0 <= took < 2.5, took
        (error,) = of_type(records, "error")
        assert error["content"]["ename"] == "KeyboardInterrupt"
        assert "did not stop when interrupted" in error["content"]["evalue"]
        assert stream_text(worker.execute("print('x' in globals())")) == "False\n"
    finally:
        worker.close()


def test_a_kernelspec_with_a_bad_interrupt_grace_is_not_offered(tmp_path: Path) -> None:
    """Tests that a kernelspec whose interrupt_grace is no number of seconds above 0 is
    refused saying so (the device then logs it and does not offer it), not run with a
    grace that never ends or ends at once."""
    from jupyter_client.kernelspec import KernelSpec

    from session import kernelspecs
    for metadata in ({"cellbus": {"interrupt_grace": "10"}}, {"cellbus": {"interrupt_grace":
                                                                         0}},
                     {"cellbus": []}):
        spec = KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher"],
                          metadata=metadata, resource_dir=str(tmp_path))
        assert "metadata.cellbus" in kernelspecs.check(spec), metadata
    spec = KernelSpec(argv=[sys.executable], metadata={"cellbus": {"interrupt_grace": 2.5}},
                      resource_dir=str(tmp_path))
    assert (kernelspecs.check(spec), kernelspecs.interrupt_grace(spec)) == ("", 2.5)


def test_a_kernel_that_never_says_it_began_is_interrupted_before_any_restart(
        tmp_path: Path) -> None:
    """Tests that a kernel that sends no execute_input, so is interrupted only
    INTERRUPT_BLIND after the Stop, gets INTERRUPT_GRACE from that interrupt to stop: with
    the grace counted from the Stop, it was restarted (its variables lost) in the same
    moment it was first interrupted, though it stops at once when it is."""
    require_kernel("python3")
    from session.jupyter import INTERRUPT_BLIND
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(Path(__file__).parent),
           "JUPYTER_PATH": str(kernelspec(tmp_path, "quiet", {}, (
               str(Path(__file__).with_name("quiet_kernel.py")),)))}
    worker = Worker(tmp_path, "--backend", "quiet", env=env)
    worker.sock.settimeout(60)
    try:
        assert reply(worker.execute("x = 1"))["status"] == "ok"
        took, records = interrupt_running(
            worker, "import time\nprint('go', flush=True)\nwhile True: time.sleep(0.01)")
        assert INTERRUPT_BLIND <= took < INTERRUPT_BLIND + 2, took
        (error,) = of_type(records, "error")
        assert error["content"]["ename"] == "KeyboardInterrupt"
        assert "restarted" not in error["content"]["evalue"], error
        assert stream_text(worker.execute("print(x)")) == "1\n"
    finally:
        worker.close()

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


def kernelspec(root: Path, name: str, metadata: Any) -> Path:
    """A JUPYTER_PATH folder with an ipykernel kernelspec ``name`` of ``metadata``."""
    folder = root / "kernels" / name
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name, "language": "python", "metadata": metadata}))
    return root


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
        worker.submit(IGNORES)
        while not any(r["msg_type"] == "stream" for r in records[-1:]):
            record = worker.link.recv()
            assert record is not None, worker.stderr()
            records.append(record)
        asked = time.monotonic()
        worker.proc.send_signal(signal.SIGINT)  # as the device's Stop does
        records = worker.collect()
        took = time.monotonic() - asked
        assert 1.0 <= took < 2.0, took
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

"""A Jupyter kernel whose own code stops it (SIGSTOP): the device finds it stopped below the
kernel's worker and continues it, as it does a Python worker (tests/test_device.py)."""

from __future__ import annotations

from harness import Chain
from kernels import require_kernel
from test_chain_kernels import run

CODE = ("import os, signal\nprint('before', flush=True)\nos.kill(os.getpid(), signal.SIGSTOP)\n"
        "print('after')")


def test_a_kernel_that_stops_itself_is_continued_and_its_cell_ends(chain: Chain) -> None:
    """Tests that an ipykernel cell that stops its kernel goes on and ends by itself, with
    all its output and the note saying why: it hung until --exec-timeout (here 60 s)."""
    require_kernel("python3")
    chain.start_broker()
    chain.start_device("--kernels", "python3", "--kernel-prefork", "0", "--exec-timeout", "60")
    chain.start_gateway()
    doc = run(chain, "u/k/1", CODE, kernel="python3", timeout=40)
    blocks = sorted(doc["output"].values(), key=lambda b: b["order"])
    assert doc["status"] == "done", doc
    # (what the kernel had sent before it stopped may come after the note: the stopped
    # kernel's own I/O thread may not have written it; then "before" and "after" are one
    # block, in order)
    assert "".join(b["content"] for b in blocks if b.get("stream") == "stdout") == \
        "before\nafter\n"
    assert "was stopped" in "".join(b["content"] for b in blocks if b.get("stream") == "stderr")

"""device/usage.py's look at a worker's processes, as the device takes it at the end of every
execution: the same resident sizes and children as ``/proc`` gives, read without a Python
file object per file (``open()`` built a raw file, a buffer and, for the children lists, a
text decoder around each of the several files a look reads: about a twentieth of the
device's instructions per execution; bench/RESULTS.md, issue 25, twelfth pass)."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
from typing import Any

import pytest

from device import usage


@pytest.fixture
def child() -> Any:
    """A child process of this one that holds 64 MiB resident until it is ended."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; b = b'x' * (64 << 20); "
                             "print('ready', flush=True); sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    yield proc
    proc.kill()
    proc.communicate()  # reaps it and closes its pipes


def test_a_look_reads_proc_without_file_objects(child: subprocess.Popen[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Any] = []
    real_open = builtins.open

    def counted(*args: Any, **kwargs: Any) -> Any:
        opened.append(args[0] if args else kwargs.get("file"))
        return real_open(*args, **kwargs)

    monkeypatch.setattr(builtins, "open", counted)
    me = os.getpid()
    assert child.pid in usage.children(me)
    mine, its = usage._rss(me), usage._rss(child.pid)
    assert its >= 64 << 20 and mine > 0
    assert usage.tree_rss(me) >= mine + its - (8 << 20)  # this process moved a little since
    assert opened == []  # was a file object per /proc file read
    with real_open(f"/proc/{child.pid}/statm", "rb") as f:
        assert usage._rss(child.pid) // usage.PAGE == pytest.approx(
            int(f.read().split()[1]), abs=256)


def test_a_process_that_ended_reads_as_nothing() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert usage._rss(proc.pid) == 0 and usage.children(proc.pid) == []
    assert usage.tree_rss(proc.pid) == 0

"""Where a node spends its CPU under load: py-spy's sampled stacks, summed by function.

py-spy (PyPI; a bench tool, not a dependency: ``pip install py-spy``) samples the running
broker from outside, so the broker runs unchanged. ``--nonblocking`` keeps it from pausing
the process; samples of a thread waiting (a selector, a Condition) are left out. uvloop's loop is C
code, so its polling and callbacks show as ``Runner.run`` itself.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

IDLE = ("select (selectors.py", "poll (selectors.py", "wait (threading.py")


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float) -> tuple[subprocess.Popen[bytes], Path] | None:
    exe = py_spy()
    if exe is None:
        return None
    out = Path(tempfile.mkstemp(prefix="cellbus-spy-", suffix=".txt")[1])
    proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                             "--rate", "200", "--nonblocking", "--format", "raw",
                             "--output", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return proc, out


def summary(started: tuple[subprocess.Popen[bytes], Path] | None, top: int = 12) -> str:
    """The ``top`` functions by samples on CPU where they were running (self) and anywhere on
    the stack (inclusive), as a Markdown list."""
    if started is None:
        return "(no profile: py-spy is not installed; `pip install py-spy`)"
    proc, out = started
    proc.wait(120)
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not frames or not count.isdigit() or any(i in frames[-1] for i in IDLE):
            continue
        n = int(count)
        total += n
        own[_short(frames[-1])] += n
        for f in {_short(f) for f in frames}:
            incl[f] += n
    out.unlink(missing_ok=True)
    if not total:
        return "(no samples on CPU)"
    lines = [f"{total} samples on CPU. Self (where the CPU was):"]
    lines += [f"- {100 * n / total:.1f} % {f}" for f, n in own.most_common(top)]
    lines += ["", "Inclusive (anywhere on the stack), cellbus's own functions:"]
    ours = [(f, n) for f, n in incl.most_common() if _ours(f)][:top]
    lines += [f"- {100 * n / total:.1f} % {f}" for f, n in ours]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``, folder kept for cellbus's own."""
    name, _, where = frame.partition(" (")
    path = where.split(":")[0]
    parts = Path(path).parts
    tail = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{name} ({tail})"


def _ours(frame: str) -> bool:
    return any(f"({d}/" in frame for d in ("broker", "protocol", "store"))

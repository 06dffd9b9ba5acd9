"""session.children: what a cell leaves behind, with real processes (no sandbox needed)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs in a process of its own session (setsid), as a worker does: an earlier cell's
# process, then a "cell" whose processes fork more of themselves, then the cleanup.
SCRIPT = textwrap.dedent("""
    import ctypes, json, os, subprocess, sys, time
    sys.path.insert(0, sys.argv[1])
    from session.children import boot_ticks, end_started_since, reap_strays
    os.setsid()
    ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans come back here, as
                                    # they go to the init of a sandboxed worker's namespace
    kept = subprocess.Popen(["sleep", "60"], stdout=subprocess.DEVNULL)
    time.sleep(0.05)
    keep = reap_strays()
    started = boot_ticks()
    cell = []
    ready_r, ready_w = os.pipe()
    for _ in range(5):
        pid = os.fork()
        if pid == 0:  # each one forks once more, and both linger
            os.fork()
            os.write(ready_w, b"x")  # this one is up
            time.sleep(60)
            os._exit(0)
        cell.append(pid)
    up = b""
    while len(up) < 10:  # until all ten are up (the test's timeout bounds this)
        up += os.read(ready_r, 10)
    ended = end_started_since(started, keep=keep)  # and reaps them: orphans came back here
    print(json.dumps({"ended": ended, "kept": kept.poll(), "kept_in": kept.pid in keep,
                      "sid": os.getsid(0)}))
    kept.kill()
    kept.wait()
""")


def test_processes_a_cell_started_are_ended_and_earlier_ones_kept() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["ended"] == 10  # 5 forked by the cell, and the 5 they forked
    assert got["kept"] is None and got["kept_in"]
    leftover = subprocess.run(["pgrep", "-s", str(got["sid"])], capture_output=True, text=True)
    assert leftover.stdout == "", leftover.stdout  # no process of that session is left

"""Faults of bench/chaos.py that strike below the nodes: the store's lock, its disk, and the
processes a device starts (its template and its session workers). Each returns the words
the run prints for the strike."""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests")]

from test_disk_full import fill  # noqa: E402


def hold_store_lock(path: str, rng: random.Random) -> str:
    """Hold the SQLite store's write lock for 4-8 s, then commit."""
    lock = sqlite3.connect(path, timeout=30, isolation_level=None)
    seconds = rng.uniform(4.0, 8.0)
    lock.execute("BEGIN IMMEDIATE")
    time.sleep(seconds)
    lock.execute("COMMIT")
    lock.close()
    return f"store-lock {seconds:.1f} s"


def fill_disk(where: Path, rng: random.Random) -> str:
    """Fill the store's filesystem for 2-5 s, then give the space back."""
    ballast = fill(where)
    seconds = rng.uniform(2.0, 5.0)
    time.sleep(seconds)
    ballast.unlink()
    return f"disk-full {seconds:.1f} s"


def kill_child(device_log: str, fault: str) -> tuple[str, str | None]:
    """SIGKILL the device's newest live session worker (``worker-kill``) or its template
    (``template-kill``), found by the lines its log names them in; the words, and the
    session whose worker died (None for the template, or if none was alive)."""
    if fault == "template-kill":
        pids = [(int(pid), None) for pid in
                re.findall(r"device template process (\d+) started", device_log)]
    else:
        pids = [(int(pid), session) for pid, session in
                re.findall(r"device started worker (\d+) for session (\w+)", device_log)]
    for pid, session in reversed(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        return f"{fault} {pid} ({session or 'template'})", session
    return f"{fault}: none alive", None

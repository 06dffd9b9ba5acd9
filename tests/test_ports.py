"""The tests' ports (tests/ports.py): two test runs on one machine never get the same one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness import node_env

TESTS = Path(__file__).resolve().parent
#: A test run in miniature: takes ports with harness.free_port, prints them, and keeps them
#: (as a run keeps its nodes' ports) until its standard input closes.
RUN = ("import sys, harness\n"
       "print(*[harness.free_port() for _ in range(300)], flush=True)\n"
       "sys.stdin.read()\n")


def test_two_runs_at_once_get_ports_of_their_own() -> None:
    """Each run checks that nothing is bound to a port before it hands it out, but a node
    binds it only seconds later: two runs' random picks (300 each, as a few dozen chains
    take) overlapped almost surely, and one's node then found its port taken."""
    runs = [subprocess.Popen([sys.executable, "-c", RUN], cwd=TESTS, env=node_env(),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(2)]
    try:
        taken = []
        for run in runs:  # the first still holds its ports while the second takes its own
            assert run.stdout is not None
            taken.append({int(p) for p in run.stdout.readline().split()})
        assert [len(ports) for ports in taken] == [300, 300]
        assert not taken[0] & taken[1], sorted(taken[0] & taken[1])
    finally:
        for run in runs:
            run.communicate(timeout=30)

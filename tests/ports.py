"""Loopback ports for the tests' nodes, never handed to two test runs at once.

A port is handed out seconds before a node binds it (a chain's gateway only after its broker
and device have started). Checking that nothing is bound to it *now* cannot tell that another
test run on the machine (another engineer's ``bin/test``, a ``pytest`` a test starts) checked
the same port a moment ago and is about to bind it: random picks of two runs once matched,
and a module's gateway failed with "port ... is in use by another program" (5 errors in a
whole run while others ran theirs). So each run reserves blocks of the range for itself, with
a lock the kernel drops when the run's process ends (``flock`` on a file per block, nothing
to clean up after a crash), and hands out ports only from its own blocks.

Ports come from below Linux's ephemeral range (32768-60999 by default): a port the kernel
picked as free (bind to 0) comes from that range, and before the node binds it, an outgoing
connection of any process (a DEALER connecting, say) may be given it as its own local port.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
import tempfile
from pathlib import Path

#: The range ports are handed out from.
PORTS = range(20000, 32768)
#: Ports in one reserved block: a whole run takes about 800 ports, so a handful of blocks
#: (each one open file) per run, and room for dozens of runs at once.
BLOCK = 128
#: Where the block locks are: one folder for every run on the machine.
LOCK_DIR = Path(tempfile.gettempdir()) / "cellbus-test-ports"


class Ports:
    """The ports of this run's reserved blocks, each handed out once."""

    def __init__(self, lock_dir: Path = LOCK_DIR) -> None:
        self.lock_dir = lock_dir
        self._locks: list[int] = []  # open lock files: closing one would free its block
        self._left: list[int] = []  # ports of the reserved blocks not handed out yet

    def _reserve_block(self) -> None:
        """Lock a block no other live run holds, and add its ports to those left."""
        if not self.lock_dir.exists():
            self.lock_dir.mkdir(exist_ok=True)
            with contextlib.suppress(PermissionError):  # another user's run made it first
                os.chmod(self.lock_dir, 0o1777)  # every user's runs, as /tmp (umask aside)
        blocks = list(range(PORTS.start, PORTS.stop - BLOCK + 1, BLOCK))
        for start in random.sample(blocks, len(blocks)):
            fd = os.open(self.lock_dir / f"{start}.lock", os.O_RDONLY | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another run's
                os.close(fd)
                continue
            self._locks.append(fd)
            self._left.extend(range(start, start + BLOCK))
            random.shuffle(self._left)
            return
        raise RuntimeError(f"every block of ports {PORTS.start}-{PORTS.stop - 1} is held by "
                           f"other test runs (locks in {self.lock_dir})")

    def take(self) -> int:
        """A port of this run's blocks that nothing is bound to now and that was not handed
        out before (a node may bind one only seconds later)."""
        while True:
            if not self._left:
                self._reserve_block()
            port = self._left.pop()
            with socket.socket() as s:
                try:  # a program that is no test run may hold it
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port

    def take_run(self, n: int) -> int:
        """The first of ``n`` consecutive ports of this run's blocks, each free now and not
        handed out before (`up --metrics-port P` serves its devices on P+1, P+2, ...)."""
        while True:
            if not self._left:
                self._reserve_block()
            left = set(self._left)
            for first in sorted(left):
                run = range(first, first + n)
                if all(port in left and _free(port) for port in run):
                    self._left = [port for port in self._left if port not in run]
                    return first
            self._left = []  # no run in these blocks: the next block is looked through


def _free(port: int) -> bool:
    """Nothing is bound to ``port`` on 127.0.0.1 now (a program that is no test run may be)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True

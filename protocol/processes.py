"""Processes of this machine: whether one still runs (for the state files and store entries
that name the pid that wrote them: ``bin/cellbus status``, the MongoDB store's writers), and
how one ended, in words (a worker's, a kernel's)."""

from __future__ import annotations

import os
import signal


def how_ended(returncode: int) -> str:
    """A return code in words: "exited with code 3", "was killed by signal 9 (SIGKILL)"."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by signal {-returncode} ({name})"
    return f"exited with code {returncode}"


def is_running(pid: object) -> bool:
    """Whether ``pid`` (a positive int) runs here; one we may not signal runs too."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

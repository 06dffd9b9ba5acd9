"""Whether a process of this machine still runs: for the state files and store entries that
name the pid that wrote them (``bin/cellbus status``, the MongoDB store's writers)."""

from __future__ import annotations

import os


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

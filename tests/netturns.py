"""Browser pages and the multi-host test bed take turns on this machine's network.

The bed (tests/netbed.py) adds and removes interfaces and addresses in the test process's
own network namespace. Chromium watches that namespace and fails every request it has in
flight when it changes (``net::ERR_NETWORK_CHANGED``): in a whole run in two xdist workers a
page of tests/test_browser_input.py lost cellbus.js that way while test_multihost.py made
its bed in the other worker. So a page holds a shared turn for its life
(:func:`tests.test_browser.open_page`) and the bed an exclusive one while it changes the
namespace: a lock file every test process on the machine opens.
"""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK = Path(tempfile.gettempdir()) / "cellbus-tests-network.lock"


@contextmanager
def network_turn(*, exclusive: bool) -> Iterator[None]:
    """Hold the network: alone (``exclusive``, to change it) or beside other readers."""
    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

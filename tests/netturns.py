"""Browser pages and the multi-host test bed take turns on this machine's network.

The bed (tests/netbed.py) adds and removes interfaces and addresses in the test process's
own network namespace. Chromium watches that namespace and fails every request it has in
flight when it changes (``net::ERR_NETWORK_CHANGED``): in a whole run in two xdist workers a
page of tests/test_browser_input.py lost cellbus.js that way while test_multihost.py made
its bed in the other worker. So a page holds a shared turn for its life
(:func:`tests.test_browser.open_page`) and the bed an exclusive one while it changes the
namespace: a lock file every test process on the machine opens.

Chromium tells of a change only after a delay (its Linux notifier waits up to 2 s for more
changes to come), so a page that began right after the bed's turn still lost a script that
way, in a whole run in three workers (test_browser_delete: ``cellbus is not defined``). The
bed's turn therefore notes when it ended, and a page's turn begins :data:`SETTLE` seconds
after that at the earliest: nothing else says when Chromium has heard of the change.

``flock`` lets a shared lock in beside the shared ones held however long an exclusive one
has waited, so while pages of other workers (or other runs on the machine) overlapped, the
bed never had its turn: its teardown waited past the test's 60 s (pytest-timeout) in a run
of the multi-host tests beside the browser tests. So an exclusive turn first takes a gate
(:data:`GATE`, beside the lock) and holds it while it waits: a shared turn passes the gate
on its way in (held only until it has the lock), so none begins while the bed waits.
"""

from __future__ import annotations

import fcntl
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK = Path(tempfile.gettempdir()) / "cellbus-tests-network.lock"
#: When the last exclusive turn ended (``time.time()``), for the turns after it.
CHANGED = LOCK.with_suffix(".changed")
#: What an exclusive turn holds from before it waits for the lock until it ends.
GATE = LOCK.with_suffix(".gate")
#: Seconds after a change of the network before a page's turn begins: Chromium's Linux
#: notifier waits 2 s (ip_address_online_delay) before it reports a change.
SETTLE = 2.5


@contextmanager
def network_turn(*, exclusive: bool) -> Iterator[None]:
    """Hold the network: alone (``exclusive``, to change it) or beside other readers."""
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    with open(GATE, "a") as gate, open(LOCK, "a") as f:
        fcntl.flock(gate, mode)
        try:
            fcntl.flock(f, mode)
        finally:
            if not exclusive:  # past the gate: an exclusive turn may wait there now
                fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            if not exclusive:  # nothing changes it while this turn lasts
                time.sleep(max(0.0, _changed() + SETTLE - time.time()))
            yield
        finally:
            if exclusive:
                CHANGED.write_text(str(time.time()))
            fcntl.flock(f, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)


def _changed() -> float:
    """When the last exclusive turn ended (0: none yet)."""
    try:
        return float(CHANGED.read_text())
    except (OSError, ValueError):
        return 0.0

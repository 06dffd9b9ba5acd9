"""A broker restarted while its devices run sessions: a session whose device has not yet
reported to the new broker process stays on that device (its variables live in its worker)
instead of being placed on whichever device reported first. Before the fix, a cell sent in
the second or so after the restart, before its session's device registered again, went to a
fresh worker on the other device: the cell failed with NameError (and the session's later
cells ran in two workers at once)."""

from __future__ import annotations

import json
import os
import re
import signal

from harness import Chain, wait_gateway_linked


def holder(chain: Chain, session: str) -> int:
    """The index in ``chain.devices`` of the device that started ``session``'s worker."""
    pattern = re.compile(rf"started worker \d+ for session {re.escape(session)} ")
    found = [n for n, device in enumerate(chain.devices) if pattern.search(device.log)]
    assert len(found) == 1, found
    return found[0]


def test_a_session_waits_for_its_device_after_a_broker_restart(chain: Chain) -> None:
    chain.start_broker()
    chain.start_device(name="d0")
    chain.start_device(name="d1")
    chain.start_gateway()
    assert chain.evaluate("u/ws/1", "x = 'kept'")[0] == 202
    doc = chain.wait_done("u/ws/1")
    assert doc["status"] == "done", doc
    frozen = chain.devices[holder(chain, doc["session"])]
    other = chain.devices[1 - holder(chain, doc["session"])]
    other_name = "d1" if frozen is chain.devices[0] else "d0"
    assert chain.broker is not None
    os.kill(frozen.proc.pid, signal.SIGSTOP)  # it reports to the new broker only later
    try:
        chain.broker.stop(signal.SIGKILL)
        chain.start_broker()
        chain.broker.wait_for_log(rf"device {other_name} registered")
        wait_gateway_linked(chain)
        assert chain.evaluate("u/ws/2", "print(x)")[0] == 202  # placed before this answers
    finally:
        os.kill(frozen.proc.pid, signal.SIGCONT)
    doc = chain.wait_done("u/ws/2", timeout=30)
    assert doc["status"] == "done" and "kept" in json.dumps(doc["output"]), doc["output"]
    assert "started worker" not in other.log, other.log

"""A session closed while its device cannot be told (broker/lateclose.py): its worker ends
once the device reports it, not after the device's ``--idle-timeout``.

Real chains: a broker on a SQLite file, a device, a gateway. The window is made, not hoped
for: the device is frozen (SIGSTOP) and the broker killed (SIGKILL) and started again on the
same store, so the new broker has not heard the device when the worksheets are restarted and
deleted over HTTP; then the device goes on (SIGCONT) and reports its sessions.
"""

from __future__ import annotations

import signal
from typing import Any

from harness import Chain, NodeProcess, until, wait_broker_answers
from test_capacity import status_json
from test_frozen_nodes import frozen


def _ran(chain: Chain, worksheet: str) -> str:
    """Run a cell in ``u/worksheet``; its session."""
    status, body = chain.evaluate(f"u/{worksheet}/1", "x = 1")
    assert status == 202, body
    doc = chain.wait_done(f"u/{worksheet}/1")
    assert doc["status"] == "done", doc
    return str(doc["session"])


def _load(chain: Chain) -> int:
    [device] = status_json(chain)["devices"]
    return int(device["load"])


def _restarted_broker(chain: Chain) -> NodeProcess:
    assert chain.broker is not None
    chain.broker.stop(signal.SIGKILL)
    broker = chain.start_broker()
    wait_broker_answers(chain)
    return broker


def _closed(chain: Chain, restarted: str) -> Any:
    """Restart the worksheet ``u/restarted`` over HTTP; the answer."""
    status, body = chain.http("POST", f"/home/u/{restarted}/1/restart", b"")
    assert status == 202 and body["closed"], body
    return body


def _ended(chain: Chain, device: NodeProcess, sessions: list[str]) -> None:
    """Each of ``sessions``' workers ends, and the device's load says so, in seconds."""
    for session in sessions:
        device.wait_for_log(rf"device: session {session} closed \(shutdown requested\)")
    until(lambda: _load(chain) == 0, "the device's load to drop to 0")


def test_a_session_closed_before_its_device_reports_has_its_worker_ended(
        chain: Chain) -> None:
    """Tests that a worksheet restarted and another one deleted while the restarted broker
    has not heard their device yet have their workers ended when the device reports them:
    the device's log says each was shut down and its load drops to 0, instead of both
    holding a place until the device's --idle-timeout (900 s); a new cell of the restarted
    worksheet runs in a fresh session."""
    chain.start_broker()
    device = chain.start_device()
    chain.start_gateway()
    restarted, deleted = _ran(chain, "a"), _ran(chain, "b")
    until(lambda: _load(chain) == 2, "the device to report both sessions")
    with frozen(device):
        broker = _restarted_broker(chain)
        _closed(chain, "a")
        status, body = chain.http("DELETE", "/home/u/b")
        assert status == 200 and body["deleted"]["requests"] == 1, body
    _ended(chain, device, [restarted, deleted])
    for session in (restarted, deleted):
        broker.wait_for_log(rf"device device0 reports session {session}, closed while the "
                            r"device could not be told; its worker is shut down now")
    status, body = chain.evaluate("u/a/2", "print(globals().get('x'))")
    assert status == 202, body
    doc = chain.wait_done("u/a/2")
    assert doc["session"] != restarted and "None" in str(doc["output"]), doc


def test_a_session_closed_by_a_previous_broker_has_its_worker_ended(chain: Chain) -> None:
    """Tests that a worksheet restarted while its device was not heard, by a broker killed
    before the device reported again, has its worker ended when the device reports to the
    next broker: only the store says the session is closed."""
    chain.start_broker()
    device = chain.start_device()
    chain.start_gateway()
    session = _ran(chain, "a")
    with frozen(device):
        _restarted_broker(chain)
        _closed(chain, "a")
        broker = _restarted_broker(chain)
    broker.wait_for_log(r"device device0 registered")
    _ended(chain, device, [session])
    broker.wait_for_log(rf"device device0 reports session {session}, which the store has "
                        r"closed; its worker is ended")

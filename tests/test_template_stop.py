"""A device stopped (SIGTERM) while it starts a new template process after the old one was
killed: it stops cleanly, without a traceback from the template it was starting (its
'ready' met the device's closed channel, and it printed BrokenPipeError; the chaos run's
``template-kill`` found it)."""

from __future__ import annotations

import os
import signal

import pytest

from harness import NodeProcess, of_type, stdout_of, until


def children(pid: int) -> set[int]:
    """The pids of ``pid``'s child processes now."""
    found: set[int] = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found.update(int(child) for child in f.read().split())
    return found


@pytest.mark.parametrize("round_", range(3))
def test_a_device_stopped_while_it_restarts_its_template_stops_cleanly(
        device_with_client, round_: int) -> None:
    client, device = device_with_client()
    device: NodeProcess
    template = int(device.wait_for_log(r"template process (\d+) started").group(1))
    os.kill(template, signal.SIGKILL)
    device.wait_for_log(r"the template process \d+ ended")
    until(lambda: children(device.proc.pid) - {template}, "the new template process", 10)
    device.proc.send_signal(signal.SIGTERM)  # while the new template starts
    assert device.proc.wait(30) == 0
    device.stop()
    assert "Traceback" not in device.log, device.log


@pytest.mark.parametrize("round_", range(3))
def test_a_session_started_while_the_template_restarts_waits_for_it(
        device_with_client, round_: int) -> None:
    """Tests that a cell of a new session (and of a session whose worker the template took
    along) that reaches the device while it restarts its killed template runs once the new
    one is up, as after a cold start (before: each was refused with AtCapacity, 'the
    template process is not running', so every cell accepted in that second failed:
    bench/chaos.py --faults template-kill had 36 of 40 cells so)."""
    client, device = device_with_client()
    assert stdout_of(client.run("print('before')", "old")) == "before\n"
    template = int(device.wait_for_log(r"template process (\d+) started").group(1))
    os.kill(template, signal.SIGKILL)
    device.wait_for_log(r"the template process \d+ ended")
    for session in ("new", "old"):
        msgs = client.run(f"print('{session}')", session, timeout=30)
        assert stdout_of(msgs) == f"{session}\n", of_type(msgs, "error")
    assert "Traceback" not in device.log

"""A worksheet's cells run in the order accepted while the device running them drains.

A draining device hands a session's queued requests back only once nothing of the session
runs on it; meanwhile the session's next cell needs a new worker elsewhere. It went there
straight away and ran ahead of the queued one (broker/dispatch.py: :meth:`Dispatch.stranded`).
"""

from __future__ import annotations

import signal

from harness import Chain
from test_failures import wait_output

#: Runs long enough for the rest of the test to happen while it runs (checked, not assumed).
SLOW = "import time\nprint('started', flush=True)\ntime.sleep(6)\nprint('finished')"


def test_a_cell_accepted_while_its_device_drains_runs_after_the_one_queued_there(
        chain: Chain) -> None:
    """Tests that cell 3 of a worksheet, accepted while its device drains with cell 1
    running and cell 2 queued there, runs after cell 2 on the other device (it sees cell
    2's variable), not before it in a fresh worker."""
    chain.start_broker()
    chain.start_gateway()
    first = chain.start_device(name="first")
    assert chain.evaluate("u/other/1", "print('b1')")[0] == 202
    assert chain.wait_done("u/other/1")["status"] == "done"
    chain.evaluate("u/ws/1", SLOW)
    wait_output(chain, "u/ws/1", "started")
    assert chain.evaluate("u/ws/2", "x = 'two'\nprint(x)")[0] == 202
    chain.start_device(name="second")
    first.proc.send_signal(signal.SIGTERM)
    # Another worksheet's cell, once done, shows the broker knows "first" drains: its session
    # is on "first", and it ran on "second" (handed back by "first", or sent there at once).
    assert chain.evaluate("u/other/2", "print('b2')")[0] == 202
    assert chain.wait_done("u/other/2")["output"]["stdout_0"]["content"] == "b2\n"
    assert chain.evaluate("u/ws/3", "print(globals().get('x'))")[0] == 202
    status, running = chain.update("u/ws/1")
    assert status == 200 and running["status"] == "working", "cell 1 ended too soon"
    assert chain.wait_done("u/ws/1")["output"]["stdout_0"]["content"] == "started\nfinished\n"
    assert chain.wait_done("u/ws/2")["output"]["stdout_0"]["content"] == "two\n"
    third = chain.wait_done("u/ws/3")
    assert third["status"] == "done" and third["output"]["stdout_0"]["content"] == "two\n"
    assert first.proc.wait(timeout=20) == 0

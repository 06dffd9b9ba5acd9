"""One event, one log line: an event is logged once, by the layer that knows it whole, not
again by each layer it passes through. Before, a device that came back to a restarted broker
was "registered" twice (its heartbeat, then its register), a cell stopped at the drain
timeout was named in four device lines (the drain, the worker, the overseer, the router),
a worker that died in four, and a node stopped by a signal said so in two ("got SIGTERM,
stopping gracefully", then "stopping")."""

from __future__ import annotations

import re
import signal

from harness import Chain, NodeProcess, until, wait_broker_answers
from test_failures import wait_output

SLOW = "import time\nprint('started', flush=True)\ntime.sleep(60)"


def lines_about(node: NodeProcess, session: str) -> list[str]:
    """The node's lines that name ``session``, but for the start of its worker."""
    return [line for line in node.log.splitlines()
            if session in line and "started worker" not in line]


def test_a_device_back_after_a_broker_restart_is_registered_once(chain: Chain) -> None:
    """Tests that a device that took its broker for lost, and hears a new one, is named
    registered once by that broker (its heartbeat and its register again are one return)."""
    chain.start_broker()
    chain.start_gateway()
    device = chain.start_device(name="dev")
    assert chain.broker is not None
    assert chain.broker.stop() == 0
    device.wait_for_log(r"device dev: no word from the broker")
    broker = chain.start_broker()
    device.wait_for_log(r"device dev: the broker is back; registering again")
    wait_broker_answers(chain)
    # Output of the device comes after its register on the same socket: once the broker
    # stored it, it has read the register too.
    assert chain.evaluate("u/ws/1", "print('after')")[0] == 202
    assert chain.wait_done("u/ws/1")["status"] == "done"
    registered = re.findall(r"device dev registered", broker.log)
    assert len(registered) == 1, broker.log


def test_a_device_that_restarts_within_the_expiry_is_registered_again(chain: Chain) -> None:
    """Tests that a device process that stops and starts again under the same id before the
    broker's expiry is named registered again: a new process, not a repeat."""
    broker = chain.start_broker()
    first = chain.start_device(name="dev")
    first.kill_group()
    chain.start_device(name="dev")
    until(lambda: len(re.findall(r"device dev registered", broker.log)) == 2,
          "the broker to name the new device process registered")


def test_a_cell_stopped_at_the_drain_timeout_is_one_line(chain: Chain) -> None:
    """Tests that a cell stopped at the drain timeout is one line of its device, naming the
    drain timeout and what the cell was told, and that the SIGTERM is one line too; a second
    one says it is that (it repeated "got SIGTERM, stopping gracefully", as if new)."""
    chain.start_broker()
    chain.start_gateway()
    device = chain.start_device("--drain-timeout", "1", name="dev")
    chain.evaluate("u/ws/1", SLOW)
    session = wait_output(chain, "u/ws/1", "started")["session"]
    device.proc.send_signal(signal.SIGTERM)
    device.wait_for_log(r"device dev draining: 1 cell running")
    assert device.stop(signal.SIGTERM, timeout=15) == 0  # again: said as such, once
    about = lines_about(device, session)
    assert len(about) == 1, device.log
    assert "DrainTimeout" in about[0] and "--drain-timeout" in about[0], about
    stopping = [line for line in device.log.splitlines()
                if re.search(r"got SIGTERM|device stopping", line)]
    assert len(stopping) == 2 and "got SIGTERM, stopping gracefully" in stopping[0], stopping
    assert "got SIGTERM: it is stopping already" in stopping[1], stopping


def test_a_worker_that_died_mid_execution_is_one_line(chain: Chain) -> None:
    """Tests that a worker killed under its cell is one line of its device (why it ended,
    and that a cell was running), and a session closed on request one line too."""
    chain.start_broker()
    chain.start_gateway()
    device = chain.start_device(name="dev")
    chain.evaluate("u/ws/1", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    doc = chain.wait_done("u/ws/1")
    assert doc["status"] == "error", doc
    # the overseer logs the end once the worker is gone, which may be after the cell's error
    # is stored (a loaded machine)
    device.wait_for_log(rf"session {doc['session']} .*killed by signal 9")
    about = lines_about(device, doc["session"])
    assert len(about) == 1, device.log
    assert "killed by signal 9 (SIGKILL)" in about[0] and "mid-execution" in about[0], about
    assert chain.evaluate("u/ws2/1", "print(1)")[0] == 202
    second = chain.wait_done("u/ws2/1")["session"]
    assert chain.http("POST", "/home/u/ws2/1/restart")[0] in (200, 202)
    closed = device.wait_for_log(rf"session {second} closed")
    assert closed is not None
    assert len(lines_about(device, second)) == 1, device.log

"""A device's report built before a hand-out reached it, arriving at the broker after the
broker made that hand-out: the broker reconciles the report only with the hand-outs the
device had read when it built it (the ``heard`` it reports, broker/handed.py), so the cell
runs once and ends done.

A device that had lost its broker registers again when it first hears one, and builds that
register as it reads the message: when that message is a hand-out, the register does not
list it, and arrives after the broker made it. The broker then took the hand-out back and
made it again (a copy the device ignored; on another device, a second run), or, when the
cell's first output was stored before it read the store, ended the cell with a false
"DeviceLost: the device dev restarted and no longer runs this cell" (3 runs in 6 with the
broker frozen, the device killed and started again, the broker continued)."""

from __future__ import annotations

from harness import Chain, until, wait_broker_answers
from test_frozen_nodes import frozen, stdout_of

ROUNDS = 2


def test_a_cell_handed_out_as_a_device_hears_its_broker_again_runs_once(chain: Chain) -> None:
    """Tests that, in each of a few rounds, a cell stored while no device runs, handed to a
    device that lost its broker as the broker comes back (its first message to the device),
    ends done with its one line, with no DeviceLost and no second hand-out."""
    broker = chain.start_broker()
    chain.start_gateway()
    device = None
    for n in range(ROUNDS):
        # Running a while: its busy is stored before the broker reads the store for the
        # register, and its reply after (a cell ended by then was not reconciled).
        status, reply = chain.evaluate(f"u/ws{n}/1", f"import time\ntime.sleep(0.5)\nprint({n})")
        assert status == 202, reply
        broker.stop()
        device = chain._start("device", "--connect", chain.device_ep, "--device-id", "dev",
                              *chain.cert_options("dev", "device"))
        device.wait_for_log(r"device dev: no word from the broker")
        broker = chain.start_broker()
        doc = chain.wait_done(f"u/ws{n}/1", timeout=30)
        assert doc["status"] == "done" and stdout_of(doc) == [str(n)], \
            f"round {n}: {doc}\nbroker:\n{broker.log}\ndevice:\n{device.log}"
        device.wait_for_log(r"the broker is back; registering again")
        assert "copy is ignored" not in device.log, f"round {n}: {device.log}"
        assert "DeviceLost" not in broker.log, f"round {n}: {broker.log}"
        assert device.stop() == 0
        wait_broker_answers(chain)


def test_a_cell_of_a_device_killed_while_its_broker_was_frozen_ends(chain: Chain) -> None:
    """Tests that a cell running on a device killed while the broker was frozen (SIGSTOP),
    the device started again under the same id before the broker went on, ends with
    DeviceLost: the new process's first report had read none of the broker's messages, so
    that cell's hand-out was in doubt until the next report, which had; and that a cell
    evaluated at once as the broker goes on runs, once."""
    broker = chain.start_broker()
    device = chain.start_device("--idle-timeout", "300", name="dev")
    chain.start_gateway()
    status, reply = chain.evaluate("u/old/1", "import time\nprint('up', flush=True)\n"
                                              "time.sleep(300)")
    assert status == 202, reply
    until(lambda: stdout_of(chain.update("u/old/1")[1]) == ["up"], "u/old/1 to run")
    with frozen(broker):
        device.kill_group()
        device = chain.start_device("--idle-timeout", "300", name="dev")
        device.wait_for_log(r"device dev: no word from the broker")
    status, reply = chain.evaluate("u/new/1", "print('new')")
    assert status == 202, reply
    doc = chain.wait_done("u/new/1", timeout=30)
    assert doc["status"] == "done" and stdout_of(doc) == ["new"], f"{doc}\n{broker.log}"
    ended = chain.wait_done("u/old/1", timeout=30)
    assert ended["status"] == "error" and "DeviceLost" in str(ended["output"]), ended
    assert "copy is ignored" not in device.log, device.log

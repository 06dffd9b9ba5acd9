"""A device's process replaced by a new one under the same ``--device-id`` while the broker
still holds the old one's connection (the old process frozen, or its host gone without
closing its TCP connection, or the broker too busy to have read the old connection's end):
the new one is heard within seconds and runs the next cells.

ZeroMQ's ROUTER drops a second connection whose routing id is in use: the new device's link
came up, but nothing it sent ever reached the broker (seen as a cell that never ran after a
device was SIGKILLed mid-flood and started again at once, tests/test_flood_device_kill.py).
The device connected again while its link was up and the broker stayed silent (the Paranoid
Pirate worker's reconnect), and was heard once the broker's ZMTP heartbeats had ended the old
connection. The broker sends none now (libzmq aborted on one due on a connection it had
failed to read), so the old connection of a frozen process stays: the broker's ROUTER hands
its routing id over to the new connection (protocol/node.py), which is heard at once."""

from __future__ import annotations

import os
import signal

from harness import Chain, until


def test_a_device_replaced_while_its_old_connection_lingers_is_heard(chain: Chain) -> None:
    broker = chain.start_broker()
    chain.start_gateway()
    old = chain.start_device(name="dev")
    assert chain.evaluate("u/ws/1", "print(1)")[0] == 202
    assert chain.wait_done("u/ws/1")["status"] == "done"
    os.killpg(old.proc.pid, signal.SIGSTOP)  # frozen: its TCP connection stays open
    try:
        chain.start_device(name="dev")
        until(lambda: broker.log.count("device dev registered") >= 2,
              "the new device dev to be registered", timeout=30)
        assert chain.evaluate("u/ws/2", "print(2)")[0] == 202
        doc = chain.wait_done("u/ws/2", timeout=30)
        assert doc["status"] == "done", doc
        assert doc["output"]["stdout_0"]["content"] == "2\n"
    finally:
        old.kill_group()
    assert chain.evaluate("u/ws/2", "print(3)")[0] == 202
    assert chain.wait_done("u/ws/2", timeout=30)["status"] == "done"

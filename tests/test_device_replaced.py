"""A device's process replaced by a new one under the same ``--device-id`` while the broker
still holds the old one's connection (the old process frozen, or its host gone without
closing its TCP connection, or the broker too busy to have read the old connection's end):
the new one says what to check, and is heard within seconds once the old one is gone.

ZeroMQ's ROUTER drops a second connection whose routing id is in use: the new device's link
came up, but nothing it sent ever reached the broker (seen as a cell that never ran after a
device was SIGKILLed mid-flood and started again at once, tests/test_flood_device_kill.py).
The device connects again while its link is up and the broker stays silent (the Paranoid
Pirate worker's reconnect), so it is heard once the old connection is gone. The broker sends
no ZMTP heartbeats of its own (libzmq aborted on one due on a connection it had failed to
read), so a frozen process's connection stays until that process ends (or TCP keepalive
ends it, for a host gone): the new device names the likely cause, another device running
with its --device-id, as it does for a second device given a taken id
(tests/test_link_words.py). Handing the id over to the new connection (ZMQ_ROUTER_HANDOVER)
was tried: two devices given one id then took the link from each other in turn."""

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
        new = chain.start_device(name="dev")
        new.wait_for_log(r"device dev: no word from the broker for \d+ s: .*is no other "
                         r"device running with --device-id dev\?", timeout=20)
        old.kill_group()  # its connection ends with it
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

"""A MongoDB that stops answering for a while (SIGSTOP of the server: a replica set's election,
a stalled disk, a paused VM) while cells stream output: the broker waits for it without
going silent towards its devices, and once it answers again every line is stored once, in
order, and no device was taken for lost.

The broker's heartbeat task also ends the cells a previous broker left on devices that never
came back, once its start-up grace is over, and it awaited that store read inline: a store
that did not answer then held every heartbeat to every device for as long, and each device
logged "no word from the broker ... does not take what this device signs: is its --key-file
the same ...", and connected again and again (the words of a wrong key, not of a slow
store)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mongodb_server
from harness import Chain, NodeProcess
from test_failures import wait_output

pytestmark = pytest.mark.mongodb

CODE = "import time\nfor i in range(300):\n    print('line', i, flush=True)\n    time.sleep(0.03)\n"
#: Seconds the server does not answer: past the devices' 3 s expiry.
PAUSE = 8.0


@pytest.fixture
def server() -> Iterator[mongodb_server.Secantus]:
    """A SecantusDB replica set of this test's own, which it may stop and continue."""
    secantus = mongodb_server.own("replset")
    try:
        yield secantus
    finally:
        os.killpg(secantus.proc.pid, signal.SIGCONT)
        secantus.stop()


def test_a_store_that_stops_answering_leaves_the_devices_their_broker(
        server: mongodb_server.Secantus, key_file: Path, nodes: list[NodeProcess]) -> None:
    chain = Chain(key_file, mongodb_server.fresh_database(server.url), nodes)
    chain.start_broker()
    device = chain.start_device()
    chain.start_gateway()
    assert chain.evaluate("u/ws/1", CODE)[0] == 202
    wait_output(chain, "u/ws/1", "line 20")
    os.killpg(server.proc.pid, signal.SIGSTOP)  # within the broker's start-up grace (6 s)
    time.sleep(PAUSE)
    os.killpg(server.proc.pid, signal.SIGCONT)
    doc = chain.wait_done("u/ws/1", timeout=60)
    assert doc["status"] == "done", doc
    assert doc["output"]["stdout_0"]["content"] == "".join(f"line {i}\n" for i in range(300))
    assert "no word from the broker" not in device.log, device.log
    assert chain.broker is not None and " is lost" not in chain.broker.log, chain.broker.log

"""Revoking a key drops the connections it has open, not only its next one, while the other
devices and gateways stay connected and keep working."""

from __future__ import annotations

import os
import re

from harness import Chain, FakeDevice, free_port
from protocol.curve import revoke

#: Rounds of revoking a connected device; CELLBUS_REVOKE_ROUNDS=20 for the long run.
ROUNDS = int(os.environ.get("CELLBUS_REVOKE_ROUNDS", "3"))


def test_revoking_a_device_drops_it_and_the_others_stay(chain: Chain, key: bytes) -> None:
    """Tests that a running device whose key is revoked is told, disconnects and stops,
    and that its key is refused (counted) from then on; then, round after round, that a
    revoked device's messages are refused while the device that stays serves every cell
    and is never taken for lost."""
    broker = chain.start_broker()
    chain.start_device(name="stays")
    chain.start_gateway()
    victim = chain.start_device(name="victim")
    revoke(chain.keys_dir, "victim")
    victim.wait_for_log(r"the broker revoked this node's CURVE key; disconnecting")
    assert victim.proc.wait(30) == 1, victim.log
    broker.wait_for_log(r"device victim is lost \(its key was revoked\)")
    for n in range(ROUNDS):
        name = f"fake{n}"
        fake = FakeDevice(key, chain, name)
        try:
            fake.report("device_register", capacity=4, load=0, sessions=[])
            broker.wait_for_log(rf"device {name} registered")
            revoke(chain.keys_dir, name)
            fake.wait_for(lambda m: m["msg_type"] == "bus_revoked", timeout=10)
            broker.wait_for_log(rf"device {name} is lost \(its key was revoked\)")
            fake.report()  # still connected, still signing: refused all the same
            broker.wait_for_log(rf"broker refused a device_heartbeat from '{name}' .*\(revoked\)")
        finally:
            fake.close()
        status, body = chain.evaluate(f"u/ws/{n}", f"print({n})")  # one session, warm
        assert status == 202, body
        doc = chain.wait_done(f"u/ws/{n}")
        assert doc["output"]["stdout_0"]["content"] == f"{n}\n"
    assert not re.search(r"device stays is lost", broker.log)


def test_revoking_a_gateway_cuts_its_feed_and_requests(chain: Chain) -> None:
    """Tests that a running gateway whose key is revoked is told, disconnects and stops,
    that the broker cut the feed's connections, and that a gateway with a key still allowed,
    running all along, keeps getting its cells' output."""
    broker = chain.start_broker()
    chain.start_device()
    doomed = chain.start_gateway(name="doomed")
    doomed_port = chain.port
    chain.port = free_port()
    chain.start_gateway(name="kept")
    assert chain.evaluate("u/ws/1", "print(1)")[0] == 202
    assert chain.wait_done("u/ws/1")["output"]["stdout_0"]["content"] == "1\n"
    kept_port, chain.port = chain.port, doomed_port
    assert chain.evaluate("u/ws/2", "print(2)")[0] == 202  # the doomed one is heard from
    chain.wait_done("u/ws/2")
    revoke(chain.keys_dir, "doomed")
    doomed.wait_for_log(r"the broker revoked this node's CURVE key; disconnecting")
    broker.wait_for_log(r"cut \d+ feed connections after a gateway key was revoked")
    assert doomed.proc.wait(30) == 1, doomed.log
    chain.port = kept_port
    assert chain.evaluate("u/ws/3", "print(3)")[0] == 202
    assert chain.wait_done("u/ws/3")["output"]["stdout_0"]["content"] == "3\n"

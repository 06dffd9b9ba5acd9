"""A node started with another deployment key than the broker's (the wrong --key-file, a
newcomer's first multi-machine mistake): both ends say what to check, instead of a device
that only reports silence and a broker that only counts bad signatures."""

from __future__ import annotations

from pathlib import Path

from harness import Chain, NodeProcess
from protocol.config import generate_key


def test_a_device_with_another_key_is_told_to_check_the_key_file(
        chain: Chain, nodes: list[NodeProcess], tmp_path: Path) -> None:
    """Tests that a device signing with a key other than the broker's gets, in its own log,
    a line naming --key-file, and the broker's line about the bad signatures names it too."""
    broker = chain.start_broker()
    other = tmp_path / "other.key"
    generate_key(other)
    device = NodeProcess("device", "--connect", chain.device_ep, "--device-id", "wrong",
                         *chain.cert_options("wrong", "device"), "--key-file", str(other))
    nodes.append(device)
    device.wait_for_log(r"no word from the broker .*--key-file")
    broker.wait_for_log(r"dropped a message: signature.*--key-file")
    assert "device wrong registered" not in broker.log

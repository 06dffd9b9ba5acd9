"""Upgrading one node while the others run: which cellbus each device runs. A device says
its version when it registers; the broker logs it, warns when it is not its own, and
``bin/cellbus status`` shows a device that runs another version (``--json``: every
device's). Before, nothing anywhere said which version a node ran."""

from __future__ import annotations

import json

from harness import Chain, FakeDevice, chain_status
from protocol.version import VERSION


def test_a_device_of_another_version_is_named_by_the_broker_and_status(chain: Chain,
                                                                      key: bytes) -> None:
    """Tests that a real device's registration line names its version (the broker's own),
    that a device reporting another version gets a warning naming both, and that status
    shows that device's version (and --json every device's)."""
    broker = chain.start_broker()
    chain.start_device("--prefork", "0", "--kernels", "python", name="new")
    broker.wait_for_log(rf"device new registered \(capacity \d+, load \d+, cellbus {VERSION}\)")
    old = FakeDevice(key, chain, "old")
    try:
        old.report("device_register", capacity=2, version="0.0.1")
        broker.wait_for_log(rf"device old runs cellbus 0.0.1, this broker {VERSION}")
        text = chain_status(chain).stdout.splitlines()
        row = next(i for i, line in enumerate(text) if line.startswith("old "))
        assert f"    runs cellbus 0.0.1 (the broker {VERSION})" in text[row + 1:row + 3], text
        assert not any("runs cellbus" in line for line in text[:row]), text  # "new" is alike
        doc = json.loads(chain_status(chain, "--json").stdout)
        assert {d["device"]: d["version"] for d in doc["devices"]} == {
            "new": VERSION, "old": "0.0.1"}
        assert doc["version"] == VERSION
    finally:
        old.close()

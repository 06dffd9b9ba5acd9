"""Whose line is it: with several devices logging to one place (``bin/cellbus up
--devices 2``'s terminal, a journal shared by the devices of one host), each device's lines
name it. Before, "device started", "device sandbox on: ...", "device got SIGTERM" and
"device stopped" were the same words from either device."""

from __future__ import annotations

import re
import signal
from pathlib import Path

from harness import NodeProcess


def test_each_devices_lines_name_it_in_ups_terminal(tmp_path: Path, nodes) -> None:
    """Tests that every line a device process logs, from its start to its stop, carries
    that device's id, so two devices' lines can be told apart."""
    options = ["--port", "0", "--devices", "2", "--store", f"sqlite:///{tmp_path / 'up.db'}"]
    nodes.append(up := NodeProcess("up", *options, env={"XDG_RUNTIME_DIR": str(tmp_path)}))
    up.wait_for_log(r"cellbus is up: http://127.0.0.1:\d+/", timeout=60)
    assert up.stop(signal.SIGTERM, timeout=30) == 0
    ids = re.findall(r"registered (?:a )?device (\S+)|device (\S+) registered", up.log)
    names = sorted({a or b for a, b in ids})
    assert len(names) == 2, up.log
    device_lines = [line for line in up.log.splitlines() if " cellbus.device" in line]
    for name in names:
        mine = [line for line in device_lines if f" cellbus.device[{name}] " in line]
        for said in ("device started", "sandbox on", "got SIGTERM", "device stopped"):
            assert any(said in line for line in mine), (name, said, up.log)
    assert all(re.search(r" cellbus\.device\[[^\]]+\] ", line) for line in device_lines), \
        device_lines

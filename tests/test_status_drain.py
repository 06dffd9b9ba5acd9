"""``bin/cellbus status`` and /ready while a device drains (SIGTERM: it finishes its running
cells and takes no new work): the device is shown draining, with no free place, and a
deployment whose every live device drains is not ready, as one with none. Before, status
showed such a device 'yes' with all its places free and 'ready: yes' (and /ready 200) while
a new worksheet's first cell could only wait."""

from __future__ import annotations

import json
import signal

from harness import Chain, NodeProcess, chain_status, until


def test_a_draining_device_is_shown_draining_and_not_counted_ready(chain: Chain) -> None:
    """Tests status (text and --json) and /ready while the only device drains a cell."""
    chain.start_broker()
    chain.start_gateway()
    device = chain.start_device("--prefork", "0", "--kernels", "python", "--drain-timeout",
                                "60", name="dev")
    assert chain.evaluate("u/ws/1", "import time\nprint('on', flush=True)\n"
                                    "time.sleep(30)")[0] == 202
    until(lambda: chain.update("u/ws/1")[1]["output"], "the cell to run")
    device.proc.send_signal(signal.SIGTERM)
    try:
        draining(chain, device)
    finally:
        device.kill_group()  # not the 30 s its cell would take


def draining(chain: Chain, device: NodeProcess) -> None:
    """What status and /ready say while ``device`` drains."""
    device.wait_for_log(r"device dev draining: 1 cell running")
    answer = until(lambda: (doc := json.loads(chain_status(chain, "--json").stdout))[
        "devices"][0].get("draining") and doc, "status to show dev draining", timeout=10)
    assert answer["ready"] is False, answer
    assert answer["problems"] == ["every live device is draining"], answer
    text = chain_status(chain)
    assert text.returncode == 3, text.stdout
    row = next(line for line in text.stdout.splitlines() if line.startswith("dev "))
    assert row.split()[1:3] == ["draining", "16"] and row.split()[4] == "0", text.stdout
    assert text.stdout.splitlines()[-1] == "ready: no (every live device is draining)"
    status, ready = chain.http("GET", "/ready")
    assert status == 503 and ready["problems"] == [
        "devices: every live device is draining (dev): new sessions wait until a device "
        "that takes work is registered"], ready

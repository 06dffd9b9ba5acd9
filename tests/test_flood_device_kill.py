"""A cell flooding output when its device is SIGKILLed (its whole process group: router,
template, workers) and the device comes back under the same name: the cell ends with one
DeviceLost error, what the store took of the flood is its first lines, each once, in order,
with no gap (nothing the broker accepted is lost, nothing is shown twice), and the
worksheet's next cell runs in a fresh worker on the device that came back."""

from __future__ import annotations

import pytest

from harness import Chain
from test_failures import wait_output

FLOOD = "for i in range(10**7):\n    print('line', i, flush=True)\n"


@pytest.mark.parametrize("round_", range(3))
def test_a_flood_cut_by_its_devices_death_keeps_a_whole_prefix_once(chain: Chain,
                                                                    round_: int) -> None:
    chain.start_broker()
    chain.start_gateway()
    device = chain.start_device(name="dev")
    assert chain.evaluate("u/ws/1", FLOOD)[0] == 202
    wait_output(chain, "u/ws/1", f"line {1000 * (round_ + 1)}\n", timeout=60)
    device.kill_group()
    chain.start_device(name="dev")
    doc = chain.wait_done("u/ws/1", timeout=60)
    assert doc["status"] == "error", doc["status"]
    errors = [b for b in doc["output"].values() if b["type"] == "error"]
    assert [e["ename"] for e in errors] == ["DeviceLost"], errors
    text = "".join(b["content"] for b in doc["output"].values() if b["type"] == "text")
    lines = text.splitlines()
    whole = lines if text.endswith("\n") else lines[:-1]
    assert whole == [f"line {i}" for i in range(len(whole))], "a gap or a repeat"
    assert len(whole) > 1000 * (round_ + 1)
    assert chain.evaluate("u/ws/2", "print('after')")[0] == 202
    after = chain.wait_done("u/ws/2", timeout=60)
    assert after["status"] == "done" and after["output"]["stdout_0"]["content"] == "after\n"
    assert chain.broker is not None and chain.broker.proc.poll() is None
    assert "Traceback" not in chain.broker.log

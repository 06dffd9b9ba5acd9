"""A cell whose code closes its worker's link to the device (``os.closerange(3, ...)``, as
code that means to close what it opened itself may do) and runs on: the device ends that
worker, and the cell says so. Before, the cell read "WorkerDied: the session's worker
process was killed by signal 9 (SIGKILL)", a kill the device made itself and did not name,
which reads as the out-of-memory killer's."""

from __future__ import annotations

from harness import Chain

CODE = "import os, time\nprint('before', flush=True)\nos.closerange(3, 65536)\ntime.sleep(30)\n"


def test_a_cell_that_closes_its_workers_link_is_told_so(chain: Chain) -> None:
    chain.start_broker()
    chain.start_gateway()
    device = chain.start_device(name="dev")
    assert chain.evaluate("u/ws/1", CODE)[0] == 202
    doc = chain.wait_done("u/ws/1", timeout=20)
    assert doc["status"] == "error", doc
    assert doc["output"]["stdout_0"]["content"] == "before\n"
    errors = [b for b in doc["output"].values() if b["type"] == "error"]
    assert [e["ename"] for e in errors] == ["WorkerDied"], errors
    assert "closed its link to the device" in errors[0]["evalue"], errors[0]["evalue"]
    assert "SIGKILL" not in errors[0]["evalue"], errors[0]["evalue"]
    device.wait_for_log(r"closed its link to the device")
    assert chain.evaluate("u/ws/2", "print('next')")[0] == 202
    after = chain.wait_done("u/ws/2", timeout=20)
    assert after["status"] == "done", after
    assert "closed its link to the device" in after["output"]["stderr_0"]["content"]
    assert after["output"]["stdout_1"]["content"] == "next\n"

"""SIGTERM stops nodes gracefully: a device drains (running cells finish, waiting ones move to
another device), and a broker stores what it has and flushes its store before it exits."""

from __future__ import annotations

import signal
import time

from harness import Chain
from test_chain_input import answer, wait_prompt
from test_failures import assert_gap_free, wait_output

SLOW = "import time\nprint('started', flush=True)\ntime.sleep({})\nprint('finished')"


def test_sigterm_device_finishes_running_cell_and_hands_back_queued_one(chain: Chain) -> None:
    """Tests that a device stopped with SIGTERM lets its running cell finish, hands the cell
    queued behind it back to the broker, which runs it on the other device; nothing is lost
    and no output seq is given twice."""
    chain.start_broker()
    chain.start_gateway()
    first = chain.start_device(name="first")
    # The running cell ends once the drain has begun (an answer to its prompt): with a
    # 3 s sleep it ended, on a loaded machine, before the second device was up and the
    # SIGTERM came, and the queued cell then ran on the first device (its worker's line
    # never came on the second)
    chain.evaluate("u/ws/1", "print('started', flush=True)\ninput()\nprint('finished')")
    wait_prompt(chain, "u/ws/1")
    status, accepted = chain.evaluate("u/ws/2", "print('queued', flush=True)")
    assert status == 202
    second = chain.start_device(name="second")
    first.proc.send_signal(signal.SIGTERM)
    first.wait_for_log(r"device first draining: 1 cell running")
    assert answer(chain, "u/ws/1", "")[0] == 202
    assert first.proc.wait(20) == 0
    ran = chain.wait_done("u/ws/1", timeout=20)
    assert ran["status"] == "done"
    texts = [b["content"] for b in ran["output"].values() if b["type"] == "text"]
    assert texts == ["started\n", "\nfinished\n"], ran["output"]  # (the answer's echo)
    moved = chain.wait_done("u/ws/2", timeout=20)
    assert moved["status"] == "done" and moved["request"] == accepted["msg_id"]
    assert moved["output"]["stdout_0"]["content"] == "queued\n"
    second.wait_for_log(r"started worker \d+ for session")
    first.wait_for_log(r"device first: the broker has everything; leaving")
    assert chain.broker is not None
    chain.broker.wait_for_log(r"device first is draining; 1 requests handed back")
    chain.broker.wait_for_log(r"device first left")
    assert "DrainTimeout" not in first.log and "Traceback" not in first.log
    for node in (first, second, chain.broker):  # nothing handed out twice looks like a replay
        assert "dropped a message" not in node.log and "replay" not in node.log
    assert_gap_free(chain, "u", "ws")


def test_sigterm_device_stops_a_cell_past_the_drain_timeout(chain: Chain) -> None:
    """Tests that a cell still running at the drain timeout ends with a clear DrainTimeout
    error (its output so far kept) and the device exits soon after."""
    chain.start_broker()
    chain.start_gateway()
    device = chain.start_device("--drain-timeout", "1", name="dev")
    chain.evaluate("u/ws/1", SLOW.format(60))
    wait_output(chain, "u/ws/1", "started")
    stopping = time.monotonic()
    assert device.stop(signal.SIGTERM, timeout=15) == 0
    assert time.monotonic() - stopping < 10
    doc = chain.wait_done("u/ws/1", timeout=10)
    assert doc["status"] == "error"
    assert doc["output"]["stdout_0"]["content"] == "started\n"
    [error] = [b for b in doc["output"].values() if b["type"] == "error"]
    assert error["ename"] == "DrainTimeout" and "--drain-timeout" in error["evalue"]
    device.wait_for_log(r"its worker \d+ was stopped \(DrainTimeout\) mid-execution")
    assert "by a limit" not in device.log, device.log  # the drain's deadline is no limit


def test_sigterm_broker_flushes_its_store_and_restarts_where_it_was(chain: Chain) -> None:
    """Tests that a broker stopped with SIGTERM mid-stream exits cleanly after flushing its
    store, and once restarted on the same store the cell completes with all its output."""
    chain.start_broker()
    chain.start_gateway()
    chain.start_device(name="dev")
    code = "import time\nfor i in range(12):\n    print(i, flush=True)\n    time.sleep(0.25)"
    chain.evaluate("u/ws/1", code)
    seen = wait_output(chain, "u/ws/1", "1\n")
    assert chain.broker is not None and chain.broker.stop(signal.SIGTERM) == 0
    chain.broker.wait_for_log(r"broker: store flushed and closed")
    chain.start_broker()
    doc = chain.wait_done("u/ws/1", timeout=30)
    assert doc["status"] == "done"
    assert doc["output"]["stdout_0"]["content"] == "".join(f"{i}\n" for i in range(12))
    assert doc["output"]["stdout_0"]["content"].startswith(seen["output"]["stdout_0"]["content"])
    assert_gap_free(chain, "u", "ws")



def test_a_device_stopped_with_no_broker_to_tell_says_so_plainly(chain: Chain) -> None:
    """Tests that a device stopped (SIGTERM) while the broker refuses its CURVE key, so its
    last message cannot be sent, says it could not tell the broker it leaves (before: "could
    not hand back 0 requests: Resource temporarily unavailable"), and exits 0."""
    from protocol.curve import make_certificate
    chain.start_broker()
    stranger = make_certificate(chain.keys_dir.parent / "elsewhere", "d9", "device")
    device = chain._start("device", "--connect", chain.device_ep, "--device-id", "d9",
                          "--prefork", "0", "--kernels", "python", "--curve-key",
                          str(stranger), "--broker-key", str(chain.keys_dir / "broker.key"))
    device.wait_for_log(r"refused this node's CURVE key")
    device.wait_for_log(r"device started")
    device.proc.send_signal(signal.SIGTERM)
    assert device.proc.wait(30) == 0, device.log
    device.wait_for_log(r"could not tell the broker it leaves \(Resource temporarily "
                        r"unavailable\); a broker takes it for lost")
    assert "hand back 0 requests" not in device.log, device.log

"""Devices and brokers that die: a lost device costs only its own running cells, and a
broker restarted on the same store picks up where it left off."""

from __future__ import annotations

import signal
import time

from harness import Chain, replayed_seqs

SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(60)"


def wait_output(chain: Chain, cell: str, text: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, doc = chain.update(cell, wait=2)
        if status == 200 and text in doc["output"].get("stdout_0", {}).get("content", ""):
            return doc
    raise AssertionError(f"{text!r} never appeared in {cell}")


def test_killed_device_fails_its_running_cell_and_its_queue_moves(chain: Chain) -> None:
    chain.start_broker()
    chain.start_gateway()
    first = chain.start_device(name="first")
    chain.evaluate("u/ws/1", SLEEPER)
    wait_output(chain, "u/ws/1", "started")
    chain.evaluate("u/ws/2", "print('queued behind the sleeper')")
    chain.start_device(name="second")
    first.kill_group()  # kill -9 of the device; its workers die with it
    lost = chain.wait_done("u/ws/1", timeout=20)
    assert lost["status"] == "error"
    error = [b for b in lost["output"].values() if b["type"] == "error"][0]
    assert error["ename"] == "DeviceLost" and "first" in error["evalue"]
    assert lost["output"]["stdout_0"]["content"] == "started\n"  # what was seen stays
    moved = chain.wait_done("u/ws/2", timeout=20)
    assert moved["status"] == "done"
    assert moved["output"]["stdout_0"]["content"] == "queued behind the sleeper\n"
    chain.broker.wait_for_log(r"device first is lost")


def test_broker_killed_mid_run_and_restarted_loses_nothing(chain: Chain) -> None:
    """Output produced while the broker is down reaches the store when it is back; seq goes
    on without gaps or duplicates; new cells run."""
    chain.start_broker()
    chain.start_gateway()
    chain.start_device(name="dev")
    code = "import time\nfor i in range(10):\n    print(i, flush=True)\n    time.sleep(0.3)"
    chain.evaluate("u/ws/1", code)
    seen = wait_output(chain, "u/ws/1", "1\n")
    chain.broker.stop(signal.SIGKILL)
    time.sleep(1.5)
    chain.start_broker()
    doc = chain.wait_done("u/ws/1", timeout=30)
    assert doc["status"] == "done"
    assert doc["output"]["stdout_0"]["content"] == "".join(f"{i}\n" for i in range(10))
    assert doc["output"]["stdout_0"]["content"].startswith(seen["output"]["stdout_0"]["content"])
    chain.evaluate("u/ws/2", "print('after')")
    assert chain.wait_done("u/ws/2")["output"]["stdout_0"]["content"] == "after\n"
    assert_gap_free(chain, "u", "ws")


def test_broker_restarted_after_its_device_died_ends_the_orphaned_cell(chain: Chain) -> None:
    chain.start_broker()
    chain.start_gateway()
    device = chain.start_device(name="dev")
    chain.evaluate("u/ws/1", SLEEPER)
    wait_output(chain, "u/ws/1", "started")
    chain.broker.stop(signal.SIGKILL)
    device.kill_group()
    chain.start_broker()
    doc = chain.wait_done("u/ws/1", timeout=30)
    assert doc["status"] == "error"
    assert any(b["type"] == "error" and b["ename"] == "DeviceLost" for b in doc["output"].values())
    chain.start_device(name="dev2")
    chain.evaluate("u/ws/2", "print('fresh')")
    assert chain.wait_done("u/ws/2")["output"]["stdout_0"]["content"] == "fresh\n"


def assert_gap_free(chain: Chain, user: str, worksheet: str) -> None:
    seqs = replayed_seqs(chain, user, worksheet)
    assert seqs == list(range(1, len(seqs) + 1)) and seqs


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_printing_100_mb_is_cut_at_the_limit_and_the_broker_stays_bounded(chain: Chain) -> None:
    """The device cuts output at --max-output (16 MiB here); the broker, which persists and
    publishes every message, grows by a bounded amount, not by the 100 MB asked for. (The
    broker keeps all of the 16 MiB here: its own cut, --cell-output, is tested in
    tests/test_quotas.py.)"""
    broker = chain.start_broker("--cell-output", str(32 * 2**20))
    chain.start_gateway()
    chain.start_device("--max-output", str(16 * 2**20), "--output-rate", str(64 * 2**20))
    assert chain.evaluate("u/w/warm", "print(1)")[0] == 202
    chain.wait_done("u/w/warm")
    before = rss_mib(broker.proc.pid)
    flood = "line = 'x' * (2**20 - 1)\nfor _ in range(100):\n    print(line)"
    assert chain.evaluate("u/w/flood", flood)[0] == 202
    doc = chain.wait_done("u/w/flood", timeout=120)
    assert doc["status"] == "error"
    text = " ".join(str(v) for v in doc["output"].values())
    assert "OutputLimitExceeded" in text and "output stopped here" in text
    stdout = sum(len(v.get("content", "")) for k, v in doc["output"].items()
                 if k.startswith("stdout") and isinstance(v, dict))
    assert 8 * 2**20 <= stdout <= 17 * 2**20, stdout
    grown = rss_mib(broker.proc.pid) - before
    print(f"broker RSS {before:.0f} MiB before, grew {grown:.0f} MiB for a 100 MB print cut "
          f"at 16 MiB ({stdout / 2**20:.1f} MiB kept)")
    assert grown < 160, grown
    assert chain.evaluate("u/w/after", "print('still here')")[0] == 202
    assert chain.wait_done("u/w/after")["status"] == "done"

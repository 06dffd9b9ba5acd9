"""Each per-session limit ends the execution with an error that names it, and the device
goes on serving everyone else."""

from __future__ import annotations

import time

from harness import of_type, stdout_of


def error_of(msgs: list[dict]) -> dict:
    return of_type(msgs, "error")[0]["content"]


def test_memory_bomb_gets_a_memory_error_naming_the_limit(device_with_client) -> None:
    client, _ = device_with_client("--max-memory", str(1 << 30))
    msgs = client.run("x = bytearray(40 * 2**30)", "s")
    error = error_of(msgs)
    assert error["ename"] == "MemoryError" and "memory limit of 1 GiB" in error["evalue"]
    assert stdout_of(client.run("print('still here')", "s")) == "still here\n"  # same session


def test_file_size_limit(device_with_client) -> None:
    client, _ = device_with_client("--max-file-bytes", "1000")
    msgs = client.run("with open('big.bin', 'wb') as f:\n    f.write(b'x' * 50_000)", "s")
    error = error_of(msgs)
    assert "File too large" in error["evalue"] and "files are limited to" in error["evalue"]


def test_cpu_limit_stops_a_spinning_session(device_with_client) -> None:
    client, _ = device_with_client("--max-cpu", "1")
    started = time.monotonic()
    msgs = client.run("while True: pass", "s", timeout=30)
    assert time.monotonic() - started < 15
    error = error_of(msgs)
    assert error["ename"] == "CPULimitExceeded" and "1 s of CPU time" in error["evalue"]
    assert stdout_of(client.run("print('fresh')", "s")) == "fresh\n"


def test_output_flood_is_cut_at_the_limit(device_with_client) -> None:
    """Printing 100 MB stops at --max-output with a notice; no more than that travels on."""
    limit = 2 * 1024 * 1024
    client, _ = device_with_client("--max-output", str(limit))
    msgs = client.run("line = 'x' * 999\nfor _ in range(100_000):\n    print(line)", "s",
                      timeout=60)
    out = stdout_of(msgs)
    assert limit - 70_000 < len(out) <= limit
    assert "output stopped here: this run printed more than 2 MiB" in stdout_of(msgs, "stderr")
    error = error_of(msgs)
    assert error["ename"] == "OutputLimitExceeded" and "more than 2 MiB" in error["evalue"]
    assert stdout_of(client.run("print('next')", "other")) == "next\n"


def test_a_flood_in_one_session_does_not_hold_up_another(device_with_client) -> None:
    client, _ = device_with_client("--output-rate", str(256 * 1024))
    flood = client.execute("line = 'y' * 999\nwhile True:\n    print(line)", "flood")
    client.wait_for(lambda m: m["msg_type"] == "stream")
    times = []
    for _ in range(5):
        started = time.monotonic()
        assert stdout_of(client.run("print(1)", "quiet")) == "1\n"
        times.append(time.monotonic() - started)
    assert sorted(times)[2] < 0.5, times
    client.request("interrupt_request", {}, "flood")
    client.replies_to(flood, timeout=30)

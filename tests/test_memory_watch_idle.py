"""A worker's memory is sampled only while a request runs on it (device/usage.py
MemoryWatch). The watch was stopped by the request's execute_reply alone: after a request that
has none (a completion or an inspection, a comm message, an interact run) it went on sampling
the idle worker's processes every 20 ms until the session's next request or its end (up to
the idle timeout): 40 ms of the device's CPU a second for six idle sessions before the fix,
none after."""

from __future__ import annotations

import os
import time

#: Idle sessions, each last asked a query.
SESSIONS = 6


def cpu_seconds(pid: int) -> float:
    """User and system CPU of process ``pid`` (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(pid: int, seconds: float = 2.0) -> float:
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - before


def test_an_idle_worker_after_a_query_is_not_sampled(device_with_client) -> None:
    client, device = device_with_client()
    sessions = [f"s{n}" for n in range(SESSIONS)]
    for session in sessions:
        client.run("x = 1", session)
        for kind, content in (("inspect_request", {"code": "x", "cursor_pos": 1}),
                              ("complete_request", {"code": "x", "cursor_pos": 1})):
            replies = client.replies_to(client.request(kind, content, session))
            assert any(m["msg_type"] == kind.replace("request", "reply") for m in replies)
    # Six watches sampling (before the fix) cost the device 0.08 s in 2 s; idle devices
    # spend about none (their heartbeats). The lesser of two windows, so that one-off work
    # (the prefork pool refilled, say) in one of them does not count.
    used = min(idle_cpu(device.proc.pid, 1.5), idle_cpu(device.proc.pid, 1.5))
    assert used < 0.02, f"an idle device used {used:.2f} s of CPU in 1.5 s"

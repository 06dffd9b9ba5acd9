"""A worker's small frame must not decode into gigabytes inside its device.

An outside attacker's cell wrote raw frames onto its own link: an ``array32`` of millions
of empty maps (one byte each, 64 bytes each once decoded). The device decoded the whole body
on its event loop before looking at it; 8 MiB took it from tens of MB to 650 MB and 64 MiB
to 4.8 GB, and stalled every other session. Now the device refuses such a record while
decoding (protocol/bounded.py), ends the worker with LinkViolation in its cell, and its own
memory stays small. Real device, real sandboxed workers, a signed client for the broker.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness import BusClient, NodeProcess
from test_forged_worker import USER_CODE_FORGER

#: The cell's code that finds its link socket (``link()``), shared with the forger test.
FIND_LINK = USER_CODE_FORGER.split("s = link()")[0]
MIB = 1 << 20


#: Python for one array32 of N empty maps: the attacker's frame body, N + 5 bytes.
FLAT = "(b'\\xdd' + struct.pack('!I', {n}) + b'\\x80' * {n})"
#: An array of 16 such arrays: no one array is long, the whole is.
NESTED = "(b'\\xdc' + struct.pack('!H', 16) + " + FLAT + " * 16)"


def attack(body: str) -> str:
    """A cell that writes the record ``body`` (Python source) onto its link, then waits to
    be ended."""
    return FIND_LINK + (
        f"body = {body}\n"
        "link().sendall(struct.pack('!I', len(body)) + body)\n"
        "import time\n"
        "time.sleep(30)\n"
        "print('still running')\n")


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def errors(msgs: list) -> list[str]:
    return [m["content"]["ename"] + ": " + m["content"]["evalue"]
            for m in msgs if m["msg_type"] == "error"]


def test_amplifying_records_end_the_worker_not_the_device(device_with_client) -> None:
    client, device = device_with_client()
    device: NodeProcess
    client: BusClient
    assert client.run("print('warm')", "victim")[-1]["msg_type"] == "status"
    before = peak_rss_mb(device.proc.pid)
    # The victim prints ticks while the attacker sends; its cell must finish normally.
    victim = client.execute("import time\nfor i in range(40):\n print(i, flush=True)\n"
                            " time.sleep(0.05)", "victim")
    for body in (FLAT.format(n=8 * MIB), NESTED.format(n=MIB // 2)):
        msgs = client.run(attack(body), "attacker", timeout=60)
        assert any("LinkViolation" in e for e in errors(msgs)), [m["msg_type"] for m in msgs]
        streams = [m["content"]["text"] for m in msgs if m["msg_type"] == "stream"]
        assert "still running" not in "".join(streams)  # ended while it slept
    done = client.replies_to(victim, timeout=60)
    ticks = [m["content"]["text"] for m in done if m["msg_type"] == "stream"]
    assert "".join(ticks).split()[-1] == "39" and not errors(done)
    came = [t for t, m in client.inbox if m["msg_type"] == "stream"
            and m["parent_header"].get("msg_id") == victim["msg_id"]]
    gap = max(b - a for a, b in zip(came, came[1:]))
    assert gap < 1.0, f"the victim's output stalled {gap:.2f} s (it prints every 0.05 s)"
    # The attacker's next cell runs in a fresh worker; the device barely grew.
    assert "after" in str(client.run("print('after')", "attacker", timeout=60))
    peak = peak_rss_mb(device.proc.pid)
    assert peak < before + 150, f"device peaked at {peak:.0f} MB (was {before:.0f} MB)"
    device.wait_for_log(r"device rejected a record from worker \d+ .*oversize")
    assert device.proc.poll() is None

"""A full disk is weather, not death: the broker's store on a small tmpfs fills up while a
cell floods output. The broker stays up, refuses new work with 507 and Retry-After, still
serves what it stored, and the device keeps the cell's output in its outbox (bounded, so
the cell's writes block); once space returns, everything flows on with no operator action
and nothing is lost or repeated."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Chain, NodeProcess, http_with_headers

LINES = 2000
FLOOD = (f"import time\nfor i in range({LINES}):\n    print('line', i, 'x' * 1000, flush=True)\n"
         "    time.sleep(0.002)\n")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs (root only), unmounted after every node using it has stopped."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the disk-full test needs root to mount a small tmpfs")
        pytest.skip("the disk-full test needs root to mount a small tmpfs")
    where = tmp_path / "disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(where: Path) -> Path:
    """Write a ballast file until the filesystem is full; return it."""
    ballast = where / "ballast"
    with open(ballast, "wb", buffering=0) as f:  # no buffer left for close() to fail on
        chunk = b"\0" * 65536
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return ballast


def test_a_full_disk_refuses_new_work_serves_reads_and_recovers_losing_nothing(
        disk: Path, key_file: Path, nodes: list[NodeProcess]) -> None:
    """Tests the whole arc of a full disk: 507 while full, reads served, recovery by itself,
    every line of the flooding cell exactly once, and a broker that never stopped."""
    chain = Chain(key_file, f"sqlite:///{disk / 'cellbus.db'}", nodes)
    broker = chain.start_broker()
    device = chain.start_device("--outbox-bytes", str(256 * 1024))  # small: backpressure
    chain.start_gateway()
    assert chain.evaluate("u/ws/early", "print('stored before')")[0] == 202
    assert chain.wait_done("u/ws/early")["status"] == "done"
    assert chain.evaluate("u/flood/1", FLOOD)[0] == 202
    chain.update("u/flood/1", wait=5)  # it runs
    ballast = fill(disk)
    broker.wait_for_log(r"the store cannot write", timeout=30)

    deadline = time.monotonic() + 20
    while True:  # a request being accepted as the disk filled may still have made it
        status, headers, body = http_with_headers(
            chain, "POST", "/home/u/ws/late/evaluate", b'{"input": "print(1)"}')
        if status == 507 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 507, (status, body)
    assert int(headers["Retry-After"]) > 0 and "nothing was accepted" in body["error"]
    status, doc = chain.update("u/ws/early")
    assert status == 200 and doc["output"]["stdout_0"]["content"] == "stored before\n"
    assert broker.proc.poll() is None

    ballast.unlink()  # space returns
    doc = chain.wait_done("u/flood/1", timeout=120)
    assert doc["status"] == "done", doc["status"]
    text = "".join(b["content"] for b in doc["output"].values() if b["type"] == "text")
    assert text.splitlines() == [f"line {i} {'x' * 1000}" for i in range(LINES)]
    broker.wait_for_log(r"the store writes again")
    assert chain.evaluate("u/ws/after", "print('after')")[0] == 202
    assert chain.wait_done("u/ws/after")["status"] == "done"
    assert broker.proc.poll() is None
    assert "Traceback" not in broker.log + device.log
    assert broker.log.count("the store cannot write") == 1  # said once, not per batch

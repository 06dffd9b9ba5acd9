"""A SQLite store the broker cannot write: the file read-only (a read-only bind mount over
it) or its whole filesystem (a tmpfs remounted read-only). A filesystem cannot be remounted
read-only while the broker holds the file open for writing (EBUSY), so the fault is met at
start; a disk that fails mid-run takes the full disk's path (tests/test_disk_full.py)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Chain, NodeProcess


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs (root only), unmounted after every node using it has stopped."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the read-only store test needs root to mount a tmpfs")
        pytest.skip("the read-only store test needs root to mount a tmpfs")
    where = tmp_path / "disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def read_only(path: Path) -> None:
    """Make ``path`` (a file) read-only where it is: a read-only bind mount over itself."""
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)


@pytest.mark.parametrize("what", ["file", "filesystem"])
def test_a_broker_on_a_read_only_store_says_so_and_the_next_one_has_everything(
        disk: Path, key_file: Path, nodes: list[NodeProcess], what: str) -> None:
    """Tests a broker started on a store it cannot write (the file read-only, or the whole
    filesystem): it stops at once with one line naming the store and why (not a traceback,
    not a broker that takes work it cannot keep), and once the store is writable again the
    next broker starts on it and serves what the first one stored."""
    chain = Chain(key_file, f"sqlite:///{disk / 'cellbus.db'}", nodes)
    broker = chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    assert chain.evaluate("u/ws/early", "print('stored before')")[0] == 202
    assert chain.wait_done("u/ws/early")["status"] == "done"
    assert broker.stop() == 0
    db = disk / "cellbus.db"
    if what == "file":
        read_only(db)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    try:
        with pytest.raises(AssertionError):
            chain.start_broker()
        broker = chain.broker
        assert broker is not None and broker.proc.wait(15) != 0
        [line] = [ln for ln in broker.log.splitlines() if "ERROR" in ln]
        assert str(db) in line and ("readonly" in line or "Read-only" in line), line
        assert "Traceback" not in broker.log
    finally:
        if what == "file":
            subprocess.run(["umount", str(db)], check=True)
        else:
            subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    chain.start_broker()
    status, doc = chain.update("u/ws/early")
    assert status == 200 and doc["output"]["stdout_0"]["content"] == "stored before\n"
    assert chain.evaluate("u/ws/after", "print('after')")[0] == 202
    assert chain.wait_done("u/ws/after")["status"] == "done"

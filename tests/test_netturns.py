"""The network's turns (tests/netturns.py): the multi-host bed gets its exclusive turn
while browser pages keep taking shared ones."""

from __future__ import annotations

import os
import threading
from contextlib import ExitStack
from pathlib import Path

import pytest

import netturns
from harness import until
from netturns import network_turn


def waiting(folder: Path) -> int:
    """How many flock requests on the files of ``folder`` wait (/proc/locks' ``->`` lines)."""
    files = [os.stat(p) for p in folder.iterdir()]
    inodes = {f"{os.major(f.st_dev):02x}:{os.minor(f.st_dev):02x}:{f.st_ino} " for f in files}
    with open("/proc/locks") as locks:
        return sum("->" in line and any(i in line for i in inodes) for line in locks)


def test_an_exclusive_turn_waits_for_the_shared_ones_held_not_for_later_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that a shared turn asked for while an exclusive one waits begins after it:
    before, flock let it in beside the shared turn held, so while pages overlapped the bed
    never had its turn (its teardown waited past the test's 60 s)."""
    monkeypatch.setattr(netturns, "LOCK", tmp_path / "net.lock")
    monkeypatch.setattr(netturns, "CHANGED", tmp_path / "net.changed")
    monkeypatch.setattr(netturns, "GATE", tmp_path / "net.gate", raising=False)
    monkeypatch.setattr(netturns, "SETTLE", 0.0)
    order: list[str] = []

    def turn(exclusive: bool) -> None:
        with network_turn(exclusive=exclusive):
            order.append("exclusive" if exclusive else "shared")

    with ExitStack() as held:
        held.enter_context(network_turn(exclusive=False))  # a page's, held meanwhile
        bed = threading.Thread(target=turn, args=(True,))
        bed.start()
        until(lambda: waiting(tmp_path) == 1, "the exclusive turn waiting")
        page = threading.Thread(target=turn, args=(False,))
        page.start()
        until(lambda: order or waiting(tmp_path) == 2, "the next page's turn")
    bed.join(10)
    page.join(10)
    assert order == ["exclusive", "shared"]

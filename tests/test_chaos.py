"""Exactly once through broker crashes: the broker is SIGKILLed and restarted at random
moments while cells in several worksheets stream numbered lines. Every accepted cell must end
``done`` with each of its lines exactly once, in order, and no error block. (bench/chaos.py
runs many more rounds of this and of other faults.)"""

from __future__ import annotations

import os
import random
import signal
import time
from typing import Any

from harness import Chain

WORKSHEETS = 8
LINES = 40
ROUNDS = 3
CODE = ("import time\nfor i in range({lines}):\n    print('{tag}', i, flush=True)\n"
        "    time.sleep(0.05)\n")


def expected(tag: str) -> str:
    return "".join(f"{tag} {i}\n" for i in range(LINES))


def accept(chain: Chain, cell: str, code: str, timeout: float = 30) -> None:
    """Evaluate until the gateway accepts (a 503 while the broker restarts is not acceptance)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, reply = chain.evaluate(cell, code)
        if status == 202:
            return
        assert status == 503, (status, reply)
        time.sleep(0.2)
    raise AssertionError(f"{cell} was never accepted")


def problems(cell: str, doc: dict[str, Any], tag: str, *, repeats: bool = False) -> list[str]:
    """What is wrong with a finished cell's document: status, lines, error blocks. With
    ``repeats``, a line stored again is not wrong (a store without transactions: see
    README, MongoDB); each line is still there, in order of first appearance."""
    found = []
    if doc["status"] != "done":
        found.append(f"{cell}: status {doc['status']}")
    errors = [b for b in doc["output"].values() if b.get("type") == "error"]
    if errors:
        found.append(f"{cell}: error blocks {errors}")
    text = "".join(b["content"] for b in sorted(doc["output"].values(), key=lambda b: b["order"])
                   if b.get("type") == "text")
    if repeats:
        text = "".join(f"{line}\n" for line in dict.fromkeys(text.splitlines()))
    if text != expected(tag):
        lines = text.splitlines()
        want = expected(tag).splitlines()
        missing = [x for x in want if x not in lines]
        extra = len(lines) - len(set(lines))
        found.append(f"{cell}: {len(lines)} lines, missing {missing}, {extra} repeated, "
                     f"in order: {lines == sorted(lines, key=lambda x: int(x.split()[-1]))}")
    return found


def crash_broker_while_streaming(chain: Chain, *, worksheets: int = WORKSHEETS,
                                 rounds: int = ROUNDS, repeats: bool = False) -> None:
    """Start the chain; ``rounds`` times, start a cell in each of ``worksheets`` worksheets
    and SIGKILL and restart the broker mid-stream, at a random moment; then check that every
    cell ends done with each of its lines exactly once (at least once with ``repeats``), in
    order, and no error."""
    rng = random.Random(int(os.environ.get("CELLBUS_CHAOS_SEED", "18")))
    chain.start_broker()
    chain.start_device("--max-sessions", str(worksheets + 2), "--idle-timeout", "300")
    chain.start_gateway()
    cells: dict[str, str] = {}
    for r in range(rounds):
        for w in range(worksheets):
            cell, tag = f"u{w}/ws/{r}", f"w{w}r{r}"
            accept(chain, cell, CODE.format(lines=LINES, tag=tag))
            cells[cell] = tag
        time.sleep(rng.uniform(0.3, 1.5))  # the moment of the crash: mid-stream, at random
        broker = chain.broker
        assert broker is not None
        os.kill(broker.proc.pid, signal.SIGKILL)
        broker.proc.wait(10)
        time.sleep(rng.uniform(0.0, 0.5))
        chain.start_broker()
    found = []
    for cell, tag in cells.items():
        found += problems(cell, chain.wait_done(cell, timeout=90), tag, repeats=repeats)
    assert not found, "\n".join(found)
    assert "Traceback" not in chain.devices[0].log


def test_broker_sigkill_loses_repeats_and_reorders_nothing(chain: Chain) -> None:
    """Tests that cells streaming output through several broker SIGKILLs and restarts all
    end done with every line exactly once, in order, and without a false DeviceLost."""
    crash_broker_while_streaming(chain)

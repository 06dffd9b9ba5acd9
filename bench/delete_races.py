"""Evaluates and deletions of one worksheet sent at once, many rounds, through real node
processes: nothing accepted may be lost. A benchmark, not a test (tests/test_delete_races.py
makes each interleaving happen once, deterministically): it prints how the rounds went.

    .venv/bin/python bench/delete_races.py [--rounds 200] [--sleep 0.3]

Each round sends ``POST /home/ann/ws/N/evaluate`` (a cell that sleeps ``--sleep`` s, longer
than the two requests take to cross, then prints its tag) and ``DELETE /home/ann/ws`` from
two threads at the same moment. Either may reach the broker first: the evaluate first makes
the DELETE a 409 (the cell runs); the DELETE first deletes the earlier rounds' runs (200, or
404 with nothing left) and the cell runs in a fresh session. Every accepted (202) cell must
end done with its own output; one that ends otherwise, or whose /update answers 404 (its run
deleted), counts as lost, and the script exits 1. One chain (tests/harness.py's ``Chain``: a
broker on a fresh SQLite file, a device, a gateway with ``--auth none``); logs in
bench/work/delete_races/.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from access_util import Answer  # noqa: E402
from harness import Chain, NodeProcess  # noqa: E402
from protocol.config import generate_key  # noqa: E402
from test_delete_runs import delete, evaluate, wait_status  # noqa: E402

LOGS = ROOT / "bench" / "work" / "delete_races"
USER = ("ann", "")


def at_once(*calls: Any) -> list[Answer]:
    """Run ``calls`` in threads released together; their answers, in order."""
    start = threading.Barrier(len(calls))
    answers: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        start.wait()
        answers[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--sleep", type=float, default=0.3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cellbus-delete-races-"))
    nodes: list[NodeProcess] = []
    key = work / "bus.key"
    generate_key(key)
    chain = Chain(key, f"sqlite:///{work / 'cellbus.db'}", nodes)
    outcomes: collections.Counter[tuple[int, int]] = collections.Counter()
    lost: list[str] = []
    started = time.monotonic()
    try:
        chain.start_broker()
        chain.start_device()
        chain.start_gateway()
        for n in range(args.rounds):
            cell, tag = f"ws/{n}", f"round {n}"
            code = f"import time\ntime.sleep({args.sleep})\nprint({tag!r})"
            ran, deleted = at_once(partial(evaluate, chain, USER, cell, code),
                                   partial(delete, chain, USER, "/home/ann/ws"))
            outcomes[(ran.status, deleted.status)] += 1
            if ran.status != 202:
                continue
            try:
                doc = wait_status(chain, USER, cell, ("done", "error"), timeout=30)
            except AssertionError:
                lost.append(f"{cell}: never ended (DELETE {deleted.status} {deleted.body})")
                continue
            if doc["status"] != "done" or tag not in str(doc["output"]):
                lost.append(f"{cell}: {doc['status']}, {doc['output']}")
    finally:
        LOGS.mkdir(parents=True, exist_ok=True)
        for node in nodes:
            (LOGS / f"{node.argv[node.argv.index('cellbus') + 1]}.log").write_text(node.log)
            node.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.rounds} rounds in {time.monotonic() - started:.1f} s "
          "(evaluate, DELETE): count")
    for (ran_status, deleted_status), count in sorted(outcomes.items()):
        print(f"  ({ran_status}, {deleted_status}): {count}")
    print(f"accepted and lost: {len(lost)}")
    for line in lost:
        print(f"  {line}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())

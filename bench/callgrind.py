"""Instructions per execution of the broker, gateway and device, counted by callgrind.

    .venv/bin/python bench/callgrind.py [--tree NAME=DIR ...] [--execs N]

CPU time on a busy 2-core machine moves with the load; instruction counts do not. For each
tree given (default: this one) this starts ``cellbus up`` with those three nodes re-executed
under ``valgrind --tool=callgrind --instr-atstart=no`` (``bench/_callgrind/sitecustomize.py``
does that; nothing else changes), opens one session, runs 20 executions of ``print(2)`` to
warm up, switches counting on (``callgrind_control -i on``), runs N more one at a time,
dumps the counts and prints instructions (Ir) per execution for each node, every thread of
it included (store writer, ZeroMQ I/O). One session at a time, so no batching varies from
run to run: the same tree gives the same counts within about 1%. Session workers run
sandboxed and are not counted (``bench/node_cpu.py`` has their CPU time).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.drivers import CellbusSession  # noqa: E402
from bench.node_cpu import PRINT2, Tree  # noqa: E402

COUNTED = ("broker", "gateway", "device")


class CallgrindTree(Tree):
    """A tree whose broker, gateway and device run under callgrind."""

    def __init__(self, name: str, tree: Path, work: Path) -> None:
        super().__init__(name, tree, work)
        self.out = work / "callgrind"
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir(parents=True)

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PYTHONPATH"] += os.pathsep + str(ROOT / "bench" / "_callgrind")
        env["BENCH_CALLGRIND_NODES"] = ",".join(COUNTED)
        env["BENCH_CALLGRIND_OUT"] = str(self.out)
        return env


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


async def _drive(tree: CallgrindTree, n: int) -> dict[int, str]:
    session = CellbusSession(tree.port, "callgrind")
    await session.open()
    try:
        for _ in range(20):
            await session.execute(PRINT2, timeout=120)
        pids = {p: label for p, label in tree.processes().items() if label in COUNTED}
        for pid in pids:
            _control("-i", "on", str(pid))
        for _ in range(n):
            got = await session.execute(PRINT2, timeout=120)
            assert got.output == "2\n", got.output
        for pid in pids:
            _control("-d", str(pid))
            _control("-i", "off", str(pid))
        return pids
    finally:
        await session.close()


def instructions(out: Path, label: str, pid: int) -> int:
    """Ir in the dumps callgrind_control asked for (``.out.N`` files; not the exit dump)."""
    total = 0
    for path in glob.glob(f"{out}/{label}.{pid}.out.*"):
        with open(path) as f:
            total += sum(int(line.split()[1]) for line in f if line.startswith("totals:"))
    return total


def measure(name: str, tree_dir: Path, n: int, work: Path) -> dict[str, float]:
    """Instructions per execution of each counted node of one tree."""
    tree = CallgrindTree(name, tree_dir, work / name)
    tree.start()
    try:
        tree.wait_ready(timeout=300)
        pids = asyncio.run(_drive(tree, n))
        time.sleep(1)
    finally:
        tree.stop()
    return {label: instructions(tree.out, label, pid) / n for pid, label in pids.items()}


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/callgrind.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                   help="a source tree to count (repeatable); default: this tree as 'now'")
    p.add_argument("--execs", type=int, default=200, help="executions counted per tree")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "callgrind")
    args = p.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        print("bench/callgrind.py needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    print(f"instructions per execution of print(2), one session, {args.execs} executions")
    print("| tree | " + " | ".join(COUNTED) + " | total |")
    print("|---" * (len(COUNTED) + 2) + "|")
    for spec in args.tree or [f"now={ROOT}"]:
        name, _, tree_dir = spec.partition("=")
        counts = measure(name, Path(tree_dir).resolve(), args.execs, args.work)
        cells = [f"{counts.get(label, 0) / 1e6:.2f} M" for label in COUNTED]
        print(f"| {name} | " + " | ".join(cells) + f" | {sum(counts.values()) / 1e6:.2f} M |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CPU per execution of each cellbus node, warm round trip and cold start, tree against tree.

    .venv/bin/python bench/node_cpu.py [--tree NAME=DIR ...] [--execs N] [--sessions K]
                                      [--rounds R] [--warm W] [--cold C] [--py-spy DIR]

Starts ``cellbus up`` of every tree given (default: this one) side by side on 127.0.0.1, each
importing its own code (``PYTHONPATH`` = the tree), and drives them alternately, round by
round, so machine noise hits each alike. Per round and tree:

- **cpu**: K sessions run ``print(2)`` back to back until N executions are done; the CPU
  each process used (utime + stime from ``/proc/PID/stat``, summed per node: broker, device,
  gateway, workers = the template and its forks, and this client) is divided by N, and N by
  the wall time gives the throughput;
- **warm**: W round trips of ``print(2)`` on one live session (reply and output in);
- **cold**: C new sessions, connect + subscribe + ``print(2)`` → first output.

CPU time is the load-insensitive measure on a busy machine: compare those; for wall-clock
numbers compare trees within one run. ``--py-spy DIR`` also records each node of each tree
with py-spy during its first cpu window (``DIR/<tree>-<node>.txt``, collapsed stacks that
``flamegraph.pl`` or speedscope read; py-spy must be installed in the venv).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import procs  # noqa: E402
from bench.drivers import CellbusSession, clock  # noqa: E402
from bench.report import p90  # noqa: E402

PRINT2 = "print(2)"
NODES = ("broker", "gateway", "device", "workers")


class Tree(procs.Cellbus):
    """``cellbus up`` of one source tree, importing that tree's code (``bin/up.py`` in trees
    from before the launcher became the ``cellbus`` package)."""

    def __init__(self, name: str, tree: Path, work: Path) -> None:
        self.name = name
        self.tree = tree
        work.mkdir(parents=True, exist_ok=True)
        super().__init__(work, procs.free_port())

    def argv(self) -> list[str]:
        script = self.tree / "bin" / "up.py"
        up = [str(script)] if script.exists() else ["-m", "cellbus", "up"]
        return [sys.executable, *up, "--port", str(self.port),
                "--store", f"sqlite:///{self.db}", "--log-level", "WARNING"]

    def env(self) -> dict[str, str]:
        return {**super().env(), "PYTHONPATH": str(self.tree)}


class Results:
    """Samples per tree: cpu seconds per node, executions, rates, round trips, cold starts."""

    def __init__(self) -> None:
        self.cpu: dict[str, dict[str, float]] = {}
        self.execs: dict[str, int] = {}
        self.rate: dict[str, list[float]] = {}
        self.warm: dict[str, list[float]] = {}
        #: tree -> leg of a warm round trip (see Execution.legs) -> seconds
        self.legs: dict[str, dict[str, list[float]]] = {}
        self.cold: dict[str, list[float]] = {}
        #: tree -> "node: thread" -> cpu seconds (main thread, ZeroMQ I/O, other threads)
        self.threads: dict[str, dict[str, float]] = {}


async def cpu_window(tree: Tree, sessions: list[CellbusSession], n: int, res: Results,
                     spy: Path | None) -> None:
    pids = tree.processes()
    spies = _start_spies(tree, pids, spy) if spy else []
    before, me, tb = procs.cpu_ticks(pids), os.times(), thread_ticks(pids)
    left = n
    started = clock()

    async def loop(session: CellbusSession) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            got = await session.execute(PRINT2)
            assert got.output == "2\n", got.output
    await asyncio.gather(*(loop(s) for s in sessions))
    elapsed = clock() - started
    after, me2, ta = procs.cpu_ticks(pids), os.times(), thread_ticks(pids)
    for p in spies:
        p.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    for p in spies:
        p.wait()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = res.cpu.setdefault(tree.name, {})
    for label in after:
        cpu[label] = cpu.get(label, 0.0) + (after[label] - before.get(label, 0)) / tick
    cpu["client"] = cpu.get("client", 0.0) + me2.user - me.user + me2.system - me.system
    threads = res.threads.setdefault(tree.name, {})
    for key, ticks in ta.items():
        threads[key] = threads.get(key, 0.0) + (ticks - tb.get(key, 0)) / tick
    res.execs[tree.name] = res.execs.get(tree.name, 0) + n
    res.rate.setdefault(tree.name, []).append(n / elapsed)


def thread_ticks(pids: dict[int, str]) -> dict[str, int]:
    """CPU ticks so far per "node: thread" (main, a ZeroMQ thread, or other threads)."""
    out: dict[str, int] = {}
    for pid, label in pids.items():
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            comm = raw[raw.index("(") + 1:raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2:].split()
            kind = "main" if int(tid) == pid else comm if comm.startswith("ZMQ") else "threads"
            key = f"{label}: {kind}"
            out[key] = out.get(key, 0) + int(fields[11]) + int(fields[12])
            out[key + " sys"] = out.get(key + " sys", 0) + int(fields[12])
    return out


def _start_spies(tree: Tree, pids: dict[int, str], out: Path) -> list[subprocess.Popen[bytes]]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    out.mkdir(parents=True, exist_ok=True)
    started = []
    for pid, label in pids.items():
        if label in NODES:
            name = f"{tree.name}-{label}" + (f"-{pid}" if label == "workers" else "")
            started.append(subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
                 "--nonblocking", "--threads", "--output", str(out / f"{name}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(0.5)  # let py-spy attach before the window starts
    return started


async def warm(tree: Tree, session: CellbusSession, n: int, res: Results) -> None:
    for _ in range(n):
        got = await session.execute(PRINT2)
        assert got.output == "2\n", got.output
        res.warm.setdefault(tree.name, []).append(got.round_trip)
        for leg, seconds in (got.legs() or {}).items():
            res.legs.setdefault(tree.name, {}).setdefault(leg, []).append(seconds)


async def cold(tree: Tree, ws: str, res: Results) -> None:
    session = CellbusSession(tree.port, ws)
    t0 = clock()
    try:
        await session.open()
        opened = clock() - t0
        got = await session.execute(PRINT2)
        assert got.output == "2\n", got.output
    finally:
        await session.close()
    assert got.first_output is not None
    res.cold.setdefault(tree.name, []).append(opened + got.first_output)


async def run(args: argparse.Namespace, trees: list[Tree]) -> Results:
    res = Results()
    pools: dict[str, list[CellbusSession]] = {}
    singles: dict[str, CellbusSession] = {}
    for tree in trees:
        pools[tree.name] = [CellbusSession(tree.port, f"cpu{i}") for i in range(args.sessions)]
        singles[tree.name] = CellbusSession(tree.port, "warm")
        for s in [*pools[tree.name], singles[tree.name]]:
            await s.open()
        for _ in range(5):  # warm up every session and both pools
            await asyncio.gather(*(s.execute(PRINT2) for s in pools[tree.name]))
            await singles[tree.name].execute(PRINT2)
    try:
        for r in range(args.rounds):
            order = trees[r % len(trees):] + trees[:r % len(trees)]
            for tree in order:
                spy = args.py_spy if (args.py_spy and r == 0) else None
                await cpu_window(tree, pools[tree.name], args.execs, res, spy)
            for i in range(args.warm // args.rounds):
                for tree in (order if i % 2 else order[::-1]):
                    await warm(tree, singles[tree.name], 1, res)
            for i in range(args.cold // args.rounds):
                for tree in (order if i % 2 else order[::-1]):
                    await cold(tree, f"cold{r}-{i}", res)
                    await asyncio.sleep(0.3)  # the device refills its prefork pool
            log(f"profile: round {r + 1}/{args.rounds} done")
    finally:
        for tree in trees:
            for s in [*pools[tree.name], singles[tree.name]]:
                await s.close()
    return res


def report(res: Results, trees: list[Tree], args: argparse.Namespace) -> str:
    lines = [f"cpu: {args.rounds} x {args.execs} executions of print(2) over {args.sessions} "
             f"sessions; warm: {len(next(iter(res.warm.values()), []))} round trips; "
             f"cold: {len(next(iter(res.cold.values()), []))} new sessions; load "
             f"{Path('/proc/loadavg').read_text().split()[0]}", ""]
    head = ["tree", *(f"{n} ms/exec" for n in (*NODES, "client")), "nodes total",
            "exec/s", "warm p50 (p90)", "cold p50 (p90)"]
    rows = [head]
    for tree in trees:
        cpu, n = res.cpu.get(tree.name, {}), max(1, res.execs.get(tree.name, 0))
        per = [cpu.get(k, 0.0) / n * 1e3 for k in (*NODES, "client")]
        w, c = res.warm.get(tree.name, [0.0]), res.cold.get(tree.name, [0.0])
        rows.append([tree.name, *(f"{v:.2f}" for v in per), f"{sum(per[:4]):.2f}",
                     f"{statistics.median(res.rate.get(tree.name, [0.0])):.0f}",
                     f"{statistics.median(w) * 1e3:.2f} ({p90(w) * 1e3:.2f})",
                     f"{statistics.median(c) * 1e3:.2f} ({p90(c) * 1e3:.2f})"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for i, r in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for tree in trees:
        legs = res.legs.get(tree.name, {})
        lines.append(f"- {tree.name}, warm round trip legs (medians, ms): " + ", ".join(
            f"{leg} {statistics.median(v) * 1e3:.2f}" for leg, v in legs.items()))
    for tree in trees:
        n = max(1, res.execs.get(tree.name, 0))
        threads = res.threads.get(tree.name, {})
        parts = sorted(((k, v) for k, v in threads.items() if not k.endswith(" sys")),
                       key=lambda kv: -kv[1])
        lines.append(f"- {tree.name}, ms/exec by thread (share in the kernel): " + ", ".join(
            f"{k} {v / n * 1e3:.2f} ({threads.get(k + ' sys', 0) / max(v, 1e-9):.0%})"
            for k, v in parts if v / n >= 5e-5))
    return "\n".join(lines)


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/node_cpu.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                   help="a source tree to run (repeatable); default: this tree as 'now'")
    p.add_argument("--execs", type=int, default=1000, help="executions per cpu window")
    p.add_argument("--sessions", type=int, default=8, help="concurrent sessions in cpu windows")
    p.add_argument("--rounds", type=int, default=3, help="rounds, trees alternating")
    p.add_argument("--warm", type=int, default=150, help="warm round trips per tree")
    p.add_argument("--cold", type=int, default=15, help="cold starts per tree")
    p.add_argument("--py-spy", type=Path, metavar="DIR", help="record nodes with py-spy")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "profile")
    args = p.parse_args()
    specs = args.tree or [f"now={ROOT}"]
    trees = [Tree(name, Path(d).resolve(), args.work / name)
             for name, _, d in (s.partition("=") for s in specs)]
    try:
        for tree in trees:
            tree.start()
        for tree in trees:
            tree.wait_ready()
        res = asyncio.run(run(args, trees))
    finally:
        for tree in trees:
            tree.stop()
    print(report(res, trees, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Faults: cells streaming numbered lines through real node processes while one kind of fault
hits them at random moments, and what became of every accepted cell. A benchmark, not a test
(tests/test_chaos.py and tests/test_disk_full.py are the CI versions of two of its faults):
it prints a table.

    .venv/bin/python bench/chaos.py [--cells 500] [--faults all|NAME,...] [--seed 18]
                                    [--worksheets 8] [--interval 3,8] [--depth 2]

Each fault is a scenario of its own, on a fresh store and fresh nodes started as separate
processes (tests/harness.py's ``Chain``: one broker, one device ``dev0``, one gateway).
``--worksheets`` clients each evaluate cells that print ``--lines`` numbered lines over ~2 s,
``--depth`` cells at a time in their worksheet (the second one queued behind the first),
until ``--cells`` cells were accepted (202) in all; a 503/507 or a refused connection is
retried with a new cell id, and only a 202 counts. Meanwhile, every ``--interval`` seconds
(uniform; every random choice comes from ``--seed``) the fault strikes:

- ``gateway``, ``broker``: SIGKILL, restarted after 0-1 s;
- ``device-kill``: SIGKILL of the device's process group (router, overseer, template and
  workers: a real device death), restarted under the same name after 0-1 s;
- ``device-term``: SIGTERM (the device drains, running cells finish), restarted once it left;
- ``device-stop``: SIGSTOP of the device's router for ``--stop`` seconds (below the broker's
  3 s heartbeat liveness, so the device is slow, not lost), then SIGCONT;
- ``device-lost-stop``: SIGSTOP of the device's router for 4-6 s (past the broker's 3 s
  liveness: the broker takes it for lost, and ends its running cells with DeviceLost), then
  SIGCONT: the device ends the workers of the sessions taken for lost, so no cell after
  that runs with the old variables. A cell whose worker printed all its lines during the
  freeze has them all after its DeviceLost, and the table counts it a false error;
- ``broker-stop``: SIGSTOP of the broker for 4-6 s (past the devices' 3 s liveness: the
  silence is the broker's own, so no device may be taken for lost), then SIGCONT;
- ``gateway-stop``: SIGSTOP of the gateway for 20 s (past every heartbeat and time-to-live
  on its links, and its requests' 10 s), then SIGCONT: its clients' requests meanwhile fail
  and are retried; every cell accepted before runs once;
- ``everything``: broker, gateway and device SIGKILLed at once, restarted after 0-1 s;
- ``disk-full``: the store lives on a 256 MiB tmpfs; a ballast file fills it for 2-5 s and
  is then deleted (needs root to mount; skipped with a note otherwise);
- ``store-lock``: another process (this one) holds the SQLite store's write lock for 4-8 s,
  past the store's 5 s busy timeout and the 3 s heartbeat liveness, then commits: the broker
  cannot write meanwhile, and must take no live device for lost for it;
- ``worker-kill``: SIGKILL of one running session worker (the last the device's log names
  that is alive), as the kernel's OOM killer would: its cell ends with WorkerDied (counted
  with DeviceLost), never LinkViolation, whatever record it was writing; the worksheet's
  next cell runs in a fresh worker;
- ``template-kill``: SIGKILL of the device's template process (the forkserver its workers
  come from), the device itself left alone: its workers die with it (PR_SET_PDEATHSIG), so
  the cells running then end with WorkerDied (counted with DeviceLost), and the device
  starts a new template by itself. A cell that needs a new worker before the new template
  is up is refused by the device with AtCapacity (a false error in the table).

Once every accepted cell ended (or was given up after ``--stuck`` seconds), each is read once
more (``update?since=0``) and counted: **complete** (done, no error block, every line once,
in order); **lost** (done with a line missing, or ended by DeviceLost with a gap before its
last line: a line the device printed that never reached the store); **dup lines** and
**reordered lines** (lines seen again / after a later one); **stuck** (not ended within
``--stuck`` s); **false errors** (an error block on a cell whose device (for
``worker-kill``: its worker) did not die while it was in flight, an error block on a cell
whose status is done, or DeviceLost on a cell with all its lines); **DeviceLost** (the
cell's device was really killed while it was in flight; for ``worker-kill``, WorkerDied of
the worker killed).
RSS (VmRSS, MiB) of broker, gateway and device router is read before the load and after the
last cell (of the processes running then: a node the fault restarted is a new process).
Node logs are kept in bench/work/chaos/.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench.chaos_faults import fill_disk, hold_store_lock, kill_child  # noqa: E402
from bench.chaos_tally import Cell, Tally, count, table  # noqa: E402
from harness import Chain, NodeProcess  # noqa: E402
from test_failures import rss_mib  # noqa: E402
from protocol.config import generate_key  # noqa: E402

CODE = ("import time\nfor i in range({lines}):\n    time.sleep({pause})\n"
        "    print('{tag}', i, flush=True)\n")
FAULTS = ("gateway", "broker", "device-kill", "device-term", "device-stop", "device-lost-stop",
          "broker-stop", "gateway-stop", "everything", "disk-full", "store-lock", "worker-kill",
          "template-kill")
DEVICE = "dev0"
DISK_SIZE = "256m"
LOGS = ROOT / "bench" / "work" / "chaos"


class Run:
    """One scenario: the chain, its clients, the fault and what happened to every cell."""

    def __init__(self, fault: str, args: argparse.Namespace, rng: random.Random,
                 work: Path, store: str) -> None:
        self.fault, self.args, self.rng = fault, args, rng
        self.work = work
        self.nodes: list[NodeProcess] = []
        key = work / "bus.key"
        generate_key(key)
        self.chain = Chain(key, store, self.nodes)
        self.tally = Tally(fault)
        self.cells: list[Cell] = []
        self.deaths: list[tuple[float, float]] = []  # device killed at, back at
        self.killed_workers: list[tuple[str, float]] = []  # worker-kill: (session, when)
        self.lock = threading.Lock()
        self.reserved = 0
        self.done = threading.Event()
        self.t0 = time.monotonic()

    # -- nodes -----------------------------------------------------------------------------

    def start_device(self) -> NodeProcess:
        return self.chain.start_device("--max-sessions", str(self.args.worksheets * 2 + 2),
                                       "--idle-timeout", "600", name=DEVICE)

    def start(self) -> None:
        self.chain.start_broker()
        self.start_device()
        self.chain.start_gateway()

    def pids(self) -> dict[str, int]:
        c = self.chain
        assert c.broker and c.gateway and c.devices
        return {"broker": c.broker.proc.pid, "gateway": c.gateway.proc.pid,
                "device": c.devices[-1].proc.pid}

    def pause(self) -> None:
        time.sleep(self.rng.uniform(0.0, 1.0))

    # -- clients -----------------------------------------------------------------------------

    def http(self, call: Callable[[], tuple[int, Any]]) -> tuple[int, Any]:
        """An answer, or (0, reason) when the gateway could not be reached."""
        try:
            return call()
        except (OSError, http.client.HTTPException) as e:
            return 0, str(e)

    def submit(self, w: int, n: int) -> Cell | None:
        """Evaluate a new cell until one is accepted; None once enough cells were."""
        with self.lock:
            if self.reserved >= self.args.cells:
                return None
            self.reserved += 1
        attempt, deadline = 0, time.monotonic() + self.args.stuck
        while time.monotonic() < deadline:
            tag = f"w{w}c{n}a{attempt}"
            cell = Cell(f"chaos/{self.fault}-ws{w}/{n}-{attempt}", tag, time.monotonic())
            code = CODE.format(lines=self.args.lines, pause=2.0 / self.args.lines, tag=tag)
            status, reply = self.http(lambda c=cell.cell, s=code: self.chain.evaluate(c, s))
            if status == 202:
                cell.accepted = time.monotonic()
                with self.lock:
                    self.cells.append(cell)
                return cell
            with self.lock:
                self.tally.refused += 1
                if status not in (0, 503, 507):
                    self.tally.note(f"evaluate {cell.cell}: {status} {str(reply)[:200]}")
            attempt += 1
            time.sleep(0.3)
        with self.lock:
            self.tally.note(f"worksheet {w}: nothing accepted for {self.args.stuck:.0f} s")
        return None

    def wait(self, cell: Cell) -> None:
        deadline = cell.accepted + self.args.stuck
        while time.monotonic() < deadline:
            status, doc = self.http(lambda: self.chain.update(cell.cell, wait=5))
            if status == 200 and doc["status"] in ("done", "error"):
                cell.ended = time.monotonic()
                return
            if status != 200:
                time.sleep(0.2)

    def client(self, w: int, offset: float) -> None:
        time.sleep(offset)  # worksheets out of step, so a fault meets every phase of a cell
        n = 0
        while True:
            batch = []
            for _ in range(self.args.depth):
                if (cell := self.submit(w, n)) is not None:
                    batch.append(cell)
                n += 1
            if not batch:
                return
            for cell in batch:
                self.wait(cell)

    # -- the fault ---------------------------------------------------------------------------

    def strike(self) -> str:
        c, f = self.chain, self.fault
        assert c.broker and c.gateway
        device = c.devices[-1]
        if f == "gateway":
            c.gateway.stop(signal.SIGKILL)
            self.pause()
            c.start_gateway()
        elif f == "broker":
            c.broker.stop(signal.SIGKILL)
            self.pause()
            c.start_broker()
        elif f in ("device-kill", "everything"):
            killed = time.monotonic()
            if f == "everything":
                for node in (c.broker, c.gateway):
                    os.kill(node.proc.pid, signal.SIGKILL)
            device.kill_group()
            if f == "everything":
                c.broker.stop(signal.SIGKILL)
                c.gateway.stop(signal.SIGKILL)
            self.pause()
            if f == "everything":
                c.start_broker()
            self.start_device()
            if f == "everything":
                c.start_gateway()
            self.deaths.append((killed, time.monotonic()))
        elif f == "device-term":
            code = device.stop(signal.SIGTERM, timeout=60)
            if code != 0:
                self.tally.note(f"device exited {code} after SIGTERM")
            self.start_device()
        elif f in ("device-stop", "device-lost-stop", "broker-stop", "gateway-stop"):
            node = {"broker-stop": c.broker, "gateway-stop": c.gateway}.get(f, device)
            seconds = 20.0 if f == "gateway-stop" else self.rng.uniform(
                *(self.args.stop if f == "device-stop" else (4.0, 6.0)))
            stopped = time.monotonic()
            node.proc.send_signal(signal.SIGSTOP)
            time.sleep(seconds)
            node.proc.send_signal(signal.SIGCONT)
            if f == "device-lost-stop":
                self.deaths.append((stopped, time.monotonic()))
            return f"{f} {seconds:.1f} s"
        elif f == "store-lock":
            return hold_store_lock(self.chain.store.removeprefix("sqlite:///"), self.rng)
        elif f == "disk-full":
            return fill_disk(self.work / "disk", self.rng)
        elif f in ("worker-kill", "template-kill"):
            what, session = kill_child(device.log, f)
            if session is not None:
                self.killed_workers.append((session, time.monotonic()))
            elif f == "template-kill":
                self.deaths.append((time.monotonic(), time.monotonic()))
            return what
        return f

    def faults(self) -> None:
        low, high = self.args.interval
        while not self.done.wait(self.rng.uniform(low, high)):
            with self.lock:
                if len(self.cells) >= self.args.cells:
                    return
            try:
                what = self.strike()
            except Exception as e:  # a broken fault must not hang the run: say so, stop
                self.tally.note(f"the fault itself failed, no more faults: {e!r}")
                print(f"  {self.fault} failed: {e!r}", flush=True)
                return
            self.tally.faults += 1
            print(f"  t={time.monotonic() - self.t0:6.1f} s  {what}  "
                  f"(accepted {len(self.cells)})", flush=True)

    # -- the whole scenario ------------------------------------------------------------------

    def run(self) -> Tally:
        self.start()
        before = {node: rss_mib(pid) for node, pid in self.pids().items()}
        clients = [threading.Thread(target=self.client, args=(w, self.rng.uniform(0, 2)),
                                    daemon=True) for w in range(self.args.worksheets)]
        striker = threading.Thread(target=self.faults, daemon=True)
        for thread in [*clients, striker]:
            thread.start()
        for thread in clients:
            thread.join()
        self.done.set()
        striker.join()
        after = {node: rss_mib(pid) for node, pid in self.pids().items()}
        self.tally.rss = {node: (before[node], after[node]) for node in before}
        for cell in self.cells:
            status, doc = self.http(lambda c=cell.cell: self.chain.update(c, wait=0))
            cell.doc = doc if status == 200 else None
        for cell in self.cells:
            count(self.tally, cell, self.args.lines, self.exposed(cell))
        return self.tally

    def exposed(self, cell: Cell) -> bool:
        """Whether the cell's device (``worker-kill``: its worker) was killed while the cell
        was in flight."""
        end = cell.ended if cell.ended is not None else float("inf")
        if self.fault == "worker-kill":
            return cell.doc is not None and any(
                session == cell.doc.get("session") and cell.posted <= killed <= end
                for session, killed in self.killed_workers)
        return any(cell.posted <= back and killed <= end for killed, back in self.deaths)

    def close(self) -> None:
        order = {"gateway": 0, "device": 1, "broker": 2}  # so a device can drain to a broker
        for node in sorted(self.nodes, key=lambda node: order.get(node.argv[1], 3)):
            node.stop(timeout=30)
            node.kill_group()
        LOGS.mkdir(parents=True, exist_ok=True)
        for n, node in enumerate(self.nodes):
            role = node.argv[1] if len(node.argv) > 1 else "node"
            log = node.log
            self.tally.tracebacks += log.count("Traceback")
            (LOGS / f"{self.fault}-{n:02d}-{role}.log").write_text(log + "\n")


def scenario(fault: str, args: argparse.Namespace, rng: random.Random) -> Tally:
    work = Path(tempfile.mkdtemp(prefix=f"cellbus-chaos-{fault}-"))
    disk = work / "disk"
    mounted = False
    try:
        if fault == "disk-full":
            if os.geteuid() != 0:
                return Tally(fault, skipped="needs root to mount a small tmpfs")
            disk.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0700",
                            "tmpfs", str(disk)], check=True)
            mounted = True
            store = f"sqlite:///{disk / 'cellbus.db'}"
        else:
            store = f"sqlite:///{work / 'cellbus.db'}"
        run = Run(fault, args, rng, work, store)
        try:
            return run.run()
        finally:
            run.close()
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], check=False)
        shutil.rmtree(work, ignore_errors=True)


def pair(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    return float(low), float(high or low)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, default=500, help="accepted cells per fault")
    p.add_argument("--faults", default="all",
                   help=f"comma-separated, of: {', '.join(FAULTS)}; or all")
    p.add_argument("--seed", type=int, default=18, help="seed of every random choice")
    p.add_argument("--worksheets", type=int, default=8, help="clients, one worksheet each")
    p.add_argument("--lines", type=int, default=40, help="numbered lines a cell prints (~2 s)")
    p.add_argument("--depth", type=int, default=2,
                   help="cells a client evaluates in its worksheet before waiting for them")
    p.add_argument("--interval", type=pair, default=(3.0, 8.0), metavar="MIN,MAX",
                   help="seconds between two faults")
    p.add_argument("--stop", type=pair, default=(1.0, 2.5), metavar="MIN,MAX",
                   help="seconds a device-stop fault keeps the router stopped")
    p.add_argument("--stuck", type=float, default=120.0,
                   help="seconds after acceptance a cell must have ended by")
    args = p.parse_args()
    faults = FAULTS if args.faults == "all" else tuple(args.faults.split(","))
    if unknown := set(faults) - set(FAULTS):
        p.error(f"unknown faults: {', '.join(sorted(unknown))}")
    for name in [k for k in os.environ if k.startswith("CELLBUS_")]:
        del os.environ[name]
    if LOGS.exists():
        shutil.rmtree(LOGS)
    rng = random.Random(args.seed)
    tallies = []
    started = time.monotonic()
    for fault in faults:
        print(f"{fault}: {args.cells} cells, {args.worksheets} worksheets, seed {args.seed}",
              flush=True)
        t0 = time.monotonic()
        tally = scenario(fault, args, rng)
        tallies.append(tally)
        print(f"{fault}: {time.monotonic() - t0:.0f} s, {tally.faults} faults, "
              f"{tally.accepted} accepted, {tally.complete} complete"
              f"{', skipped: ' + tally.skipped if tally.skipped else ''}", flush=True)
    print(f"\n{len(faults)} faults in {(time.monotonic() - started) / 60:.1f} min; "
          f"median s / max s: accepted -> seen done, of complete cells; RSS before -> after\n")
    print(table(tallies))
    for t in tallies:
        extra = [f"{t.refused} evaluates refused and retried", f"{t.tracebacks} tracebacks "
                 "in node logs"]
        print(f"\n{t.fault}: {'; '.join(extra)}")
        for note in t.notes:
            print(f"  {note[:400]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How cost grows with work: open sessions, devices, and stored history, in one run.

    bin/cellbus bench --scale [--quick] [--levels 1,10,100,1000] [--devices 1,2,4]
                              [--busy 8,16,32,64] [--history 1000,100000,1000000] [--write]

Three curves, each on nodes started as an operator would (``cellbus broker``, ``device``,
``gateway``: separate processes over CURVE on loopback TCP, a fresh SQLite file), driven by
the bench's WebSocket client (bench/drivers.py):

* open sessions: idle sessions opened one by one on one device up to each level; at each
  level the PSS of everything the device forked per session, the first output of one more
  new session, the warm round trip of a session kept open, and the CPU each node uses at rest;
* devices: 1, 2, 4 devices, each level of busy sessions running ``print(1)`` back to back:
  executions per second and each node's CPU per execution. The broker's ceiling is estimated
  as 1 / (broker CPU seconds per execution): what it could do with a core of its own;
* stored history: a store filled through the Store API with N output messages of closed
  sessions before the broker starts, then the warm round trip, the replay of a worksheet of
  200 messages and ``/update`` of one of its cells.

Each curve is a table in bench/RESULTS.md (with ``--write``) and a PNG beside it (bench/
scale-*.png). A benchmark, not a test: targets are reported, never errors.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench import procs, report  # noqa: E402
from bench.drivers import CellbusSession, WsSession, clock  # noqa: E402
from bench.scale_history import fill_store  # noqa: E402
from bench.scale_report import render  # noqa: E402
from bench import scale_profile  # noqa: E402
from harness import Chain, NodeProcess  # noqa: E402
from protocol.config import generate_key  # noqa: E402

TICK = 100  # /proc/PID/stat clock ticks per second (Linux's USER_HZ)


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def ints(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x]


@contextmanager
def chain(work: Path, name: str) -> Iterator[Chain]:
    """A chain with its own key, certificates and store under ``work/name``; every node
    stopped (and its process group killed) on the way out."""
    folder = work / name
    folder.mkdir(parents=True)
    key = folder / "key"
    generate_key(str(key))
    nodes: list[NodeProcess] = []
    c = Chain(key, f"sqlite:///{folder / 'cellbus.db'}", nodes)
    try:
        yield c
    finally:
        for node in reversed(nodes):
            node.stop(timeout=30)
            node.kill_group()


def forked_pss(roots: list[int]) -> int:
    pids = [p for r in roots for p in procs.descendants(r)]
    total = 0
    for pid in pids:
        try:
            total += procs.smaps_rollup(pid)["pss"]
        except (OSError, KeyError):
            pass  # gone meanwhile
    return total


def node_pids(c: Chain) -> dict[int, str]:
    """pid -> broker / gateway / device / sessions (what the devices forked)."""
    out: dict[int, str] = {}
    if c.broker:
        out[c.broker.proc.pid] = "broker"
    if c.gateway:
        out[c.gateway.proc.pid] = "gateway"
    for d in c.devices:
        out[d.proc.pid] = "device"
        for pid in procs.descendants(d.proc.pid):
            out[pid] = "sessions"
    return out


async def cpu_over(c: Chain, seconds: float) -> dict[str, float]:
    """CPU seconds each kind of node used over the next ``seconds``."""
    pids = node_pids(c)
    before = procs.cpu_ticks(pids)
    await asyncio.sleep(seconds)
    after = procs.cpu_ticks(pids)
    return {k: (after.get(k, 0) - before.get(k, 0)) / TICK for k in after}


async def session(c: Chain, worksheet: str) -> CellbusSession:
    s = CellbusSession(c.port, worksheet)
    await s.open()
    return s


async def first_output(c: Chain, worksheet: str) -> float:
    """Seconds from opening a new worksheet (WebSocket, subscription) to its first
    ``print(1)``'s output: the session starts on that first request."""
    t0 = clock()
    s = await session(c, worksheet)
    try:
        t1 = clock()
        run = await s.execute("print(1)")
        assert run.first_output is not None
        return t1 - t0 + run.first_output
    finally:
        await WsSession.close(s)  # the socket only: the session stays


async def warm(s: CellbusSession, n: int) -> float:
    return statistics.median([(await s.execute("print(1)")).round_trip for _ in range(n)])


def start(c: Chain, devices: int, places: int, *device_options: str) -> None:
    c.start_broker()
    for i in range(devices):  # each device its own uids, enough for its places and pool
        first = 420_000 + i * 2_000
        c.start_device("--max-sessions", str(places), "--idle-timeout", "3600",
                       "--sandbox-uids", f"{first}-{first + places + 32}", *device_options)
    c.start_gateway()


# -- curve 1: open sessions -----------------------------------------------------------------


@dataclass
class Level:
    sessions: int
    pss_total: float
    new_session: float
    warm_rt: float
    cpu_rest: dict[str, float] = field(default_factory=dict)
    #: How stopping the device went with this many sessions open (the last level only).
    stop: str = ""


async def open_sessions(work: Path, levels: list[int], trials: int) -> list[Level]:
    top = max(levels)
    rows: list[Level] = []
    with chain(work, "sessions") as c:
        start(c, 1, top + trials * len(levels) + 8)
        device = c.devices[0].proc.pid
        keep = await session(c, "warm")
        await keep.execute("x = 1")
        opened = 1  # the warm session
        n = 0
        for level in levels:
            t0 = clock()
            while opened < level:
                await first_output(c, f"idle{n}")
                n, opened = n + 1, opened + 1
            log(f"scale: {opened} sessions open ({clock() - t0:.1f} s to open the last ones)")
            await asyncio.sleep(1)  # the pool refills after the last fork
            pss = forked_pss([device])
            cpu = await cpu_over(c, 5.0)
            new = []
            for _ in range(trials):
                new.append(await first_output(c, f"idle{n}"))
                n, opened = n + 1, opened + 1
            rows.append(Level(level, pss, statistics.median(new), await warm(keep, 4 * trials),
                              {k: v / 5.0 for k, v in cpu.items()}))
            log(f"scale: {rows[-1]}")
        t0 = clock()
        code = c.devices[0].stop(timeout=120)  # SIGTERM: it ends every session, then leaves
        took = clock() - t0
        tracebacks = c.devices[0].log.count("Traceback")
        rows[-1].stop = (f"Stopping the device (SIGTERM) with {opened} sessions open took "
                         f"{took:.1f} s, exit status {code}, {tracebacks} tracebacks in its log.")
        log(f"scale: {rows[-1].stop}")
    return rows


# -- curve 2: devices and busy sessions -----------------------------------------------------


@dataclass
class Load:
    devices: int
    busy: int
    rate: float
    cpu_ms: dict[str, float]
    profile: str = ""


async def busy_window(c: Chain, sessions: list[CellbusSession], seconds: float
                      ) -> tuple[int, dict[str, float]]:
    done = 0
    stop = clock() + seconds

    async def loop(s: CellbusSession) -> None:
        nonlocal done
        while clock() < stop:
            await s.execute("print(1)")
            done += 1
    pids = node_pids(c)
    before = procs.cpu_ticks(pids)
    await asyncio.gather(*(loop(s) for s in sessions))
    after = procs.cpu_ticks(pids)
    return done, {k: (after.get(k, 0) - before.get(k, 0)) / TICK for k in after}


async def throughput(work: Path, devices: list[int], busy: list[int], seconds: float
                     ) -> list[Load]:
    rows: list[Load] = []
    for d in devices:
        with chain(work, f"devices{d}") as c:
            start(c, d, max(busy) // d + 4, "--prefork", "4")
            sessions = [await session(c, f"busy{i}") for i in range(max(busy))]
            for s in sessions:
                await s.execute("x = 1")
            for b in busy:
                await busy_window(c, sessions[:b], 1.0)  # warm up
                spy = (scale_profile.start(c.broker.proc.pid, seconds)  # type: ignore[union-attr]
                       if (d, b) == (devices[-1], busy[-1]) else None)
                t0 = clock()
                done, cpu = await busy_window(c, sessions[:b], seconds)
                took = clock() - t0
                rows.append(Load(d, b, done / took, {k: 1000 * v / max(done, 1)
                                                     for k, v in cpu.items()},
                                 scale_profile.summary(spy) if spy else ""))
                log(f"scale: {rows[-1]}")
            for s in sessions:
                await s.close()
    return rows


# -- curve 3: stored history ----------------------------------------------------------------


@dataclass
class History:
    messages: int
    fill: float
    warm_rt: float
    replay: float
    update: float


async def replay_time(c: Chain, worksheet: str) -> float:
    s = CellbusSession(c.port, worksheet)
    t0 = clock()
    await s.open()  # returns at subscribe_reply, after the whole replay
    took = clock() - t0
    await WsSession.close(s)
    return took


async def history(work: Path, sizes: list[int], trials: int) -> list[History]:
    rows: list[History] = []
    for size in sizes:
        with chain(work, f"history{size}") as c:
            t0 = clock()
            await fill_store(c.store, size)
            fill = clock() - t0
            start(c, 1, 8)
            s = await session(c, "history")
            await s.execute("for i in range(200):\n    print(i, flush=True)")
            await s.execute("x = 1")
            warm_rt = await warm(s, 4 * trials)
            replay = statistics.median([await replay_time(c, "history")
                                        for _ in range(trials)])
            updates = []
            for _ in range(4 * trials):
                t1 = clock()
                status, _ = await asyncio.to_thread(c.update, "bench/history/1")
                assert status == 200
                updates.append(clock() - t1)
            await s.close()
            rows.append(History(size, fill, warm_rt, replay, statistics.median(updates)))
            log(f"scale: {rows[-1]}")
    return rows


# -- report ---------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cellbus bench --scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="levels 1,10,100; 1-2 devices, 8-16 busy; history 10^3 and 10^5")
    p.add_argument("--levels", type=ints, default=[1, 10, 100, 1000])
    p.add_argument("--devices", type=ints, default=[1, 2, 4])
    p.add_argument("--busy", type=ints, default=[8, 16, 32, 64])
    p.add_argument("--history", type=ints, default=[1000, 100_000, 1_000_000])
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--seconds", type=float, default=8.0, help="each throughput window")
    p.add_argument("--only", choices=["sessions", "devices", "history"], action="append")
    p.add_argument("--write", action="store_true", help="keep the tables in bench/RESULTS.md")
    p.add_argument("--no-gateway", action="store_true",
                   help="no Jupyter Kernel Gateway beside the open-sessions curve")
    p.add_argument("--jkg-budget", type=float, default=300.0, metavar="S",
                   help="Kernel Gateway goes to the next level only if the last one opened "
                        "its kernels within this many seconds")
    return p


async def run(args: argparse.Namespace, work: Path) -> dict[str, str]:
    only = set(args.only or ["sessions", "devices", "history"])
    levels = await open_sessions(work, args.levels, args.trials) if "sessions" in only else []
    kg: tuple[list[Level], str] = ([], "")
    if "sessions" in only and not args.no_gateway:
        from bench.scale_jkg import open_kernels
        kg = await open_kernels(ROOT / "bench" / "work", args.levels, args.trials,
                                args.jkg_budget, log)
    loads = (await throughput(work, args.devices, args.busy, args.seconds)
             if "devices" in only else [])
    hist = await history(work, args.history, args.trials) if "history" in only else []
    return render(levels, loads, hist, kg)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        args.levels, args.devices, args.busy = [1, 10, 100], [1, 2], [8, 16]
        args.history, args.trials, args.seconds = [1000, 100_000], 3, 4.0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cellbus-scale-") as work:
        sections = asyncio.run(run(args, Path(work)))
    took = time.monotonic() - started
    command = f"bin/cellbus bench --scale {' '.join(argv if argv is not None else sys.argv[1:])}"
    for title, body in sections.items():
        body += (f"\n\nMeasured {time.strftime('%Y-%m-%d %H:%M %Z')}, load average "
                 f"{os.getloadavg()[0]:.1f} at the end (other work on the machine shows here); "
                 f"the whole run took {took:.0f} s (`{command.strip()}`).")
        print(f"## {title}\n\n{body}\n")
        if args.write:
            report.keep_section(ROOT / "bench" / "RESULTS.md", title, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

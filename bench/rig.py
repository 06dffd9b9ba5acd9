"""The bench's systems and how it runs a trial on them (bench/compare.py's base).

:class:`Rig` starts cellbus and (unless ``--no-gateway``) Jupyter Kernel Gateway twice, stock
and with TCP_NODELAY, opens sessions on each, rotates their order trial by trial so machine
noise hits each alike, waits for a quiet machine between cold starts, and turns a failed
trial into a note in the table instead of an abort. The measurements are in
bench/latency.py and bench/load.py.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import procs
from bench.drivers import CellbusSession, KernelGatewaySession, WsSession, clock
from bench.report import Row

PRINT2 = "print(2)"


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def loadavg() -> str:
    """The 1-minute load average, as /proc/loadavg says it."""
    return Path("/proc/loadavg").read_text().split()[0]


class Rig:
    """The systems under test and the trial loop's helpers."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick = args.quick
        self.trials = args.trials or (5 if args.quick else 20)
        self.warm_trials = 10 * self.trials
        self.window = 3.0 if args.quick else 10.0
        self.rounds = 1 if args.quick else 3
        self.mem_trials = 2 if args.quick else 3
        self.work: Path = args.work.resolve()
        self.servers: dict[str, procs.Server] = {}
        self.versions: dict[str, str] = {}
        self.details: list[str] = []
        self.counter = 0
        self.load = [loadavg()]

    # ------------------------------------------------------------------ systems

    def systems(self) -> list[str]:
        return list(self.servers)

    def rotated(self, i: int) -> list[str]:
        names = self.systems()
        k = i % len(names)
        return names[k:] + names[:k]

    def new_session(self, system: str) -> WsSession:
        port = self.servers[system].port
        if system == "cellbus":
            self.counter += 1
            return CellbusSession(port, f"ws{self.counter}")
        return KernelGatewaySession(port)

    async def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.servers["cellbus"] = procs.Cellbus(self.work, procs.free_port())
        if not self.args.no_gateway:
            venv, jkg_versions = procs.jkg_venv(self.work, log)
            self.versions.update({f"{k} (JKG venv)": v for k, v in jkg_versions.items()})
            for nodelay in (False, True):
                server = procs.KernelGateway(self.work, procs.free_port(), venv, nodelay)
                self.servers[server.name] = server
        for server in self.servers.values():
            server.start()
        for server in self.servers.values():
            server.wait_ready()
        log("bench: up: " + ", ".join(f"{n} on 127.0.0.1:{s.port}"
                                      for n, s in self.servers.items()))

    def stop(self) -> None:
        for server in self.servers.values():
            try:
                server.stop()
            except Exception as e:  # go on stopping the others
                log(f"bench: stopping {server.name}: {e}")

    async def guarded(self, row: Row, system: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run one system's part of a row; a failure becomes a note in the table."""
        try:
            await work()
        except Exception as e:
            row.failures.setdefault(system, []).append(type(e).__name__)
            log(f"bench: {row.name} on {system} failed:")
            traceback.print_exc()
            self.details.append(f"- {row.name} on {system} failed: {type(e).__name__}: {e}")

    async def settle(self, quiet: float = 0.1, longest: float = 3.0) -> None:
        """Wait until no process of any system used CPU for ``quiet`` seconds (a kernel
        exiting, a worker pool refilling), at most ``longest``: each cold start begins on a
        machine as quiet as the last one left it, whichever system ran before it."""
        deadline = clock() + longest
        last = -1
        while clock() < deadline:
            pids: dict[int, str] = {}
            for server in self.servers.values():
                pids.update(server.processes())
            used = sum(procs.cpu_ticks(pids).values())
            if used == last:
                return
            last = used
            await asyncio.sleep(quiet)

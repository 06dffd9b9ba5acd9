"""cellbus against Jupyter Kernel Gateway, on this machine, in one run.

    bin/cellbus bench [--quick] [--trials N] [--work DIR] [--no-gateway]

Starts cellbus as ``bin/cellbus up`` does (embedded SQLite store in the work folder) and
Jupyter Kernel Gateway twice: stock, and with TCP_NODELAY forced on its sockets by a launcher
the bench writes (the installed gateway is not changed). The gateway and ipykernel are
installed into their own venv under the work folder on first use. All listen on 127.0.0.1.
One client drives all three over their WebSocket APIs (and cellbus over HTTP too),
interleaving trials so machine noise hits each alike, and prints medians with p90 and the
ratio cellbus / the better gateway. The table also goes to bench/RESULTS.md. A benchmark,
not a test: a missed target is reported, never an error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import statistics
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import procs  # noqa: E402
from bench.drivers import (CellbusHttp, CellbusSession, Execution,  # noqa: E402
                           KernelGatewaySession, WsSession, clock)
from bench import report  # noqa: E402
from bench.report import Row, fmt  # noqa: E402

PRINT2 = "print(2)"
INTERACT = "@interact\ndef f(n=(0, 99)):\n    print('n =', n)"
SESSIONS = 8
BURST_LINES = 500


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cellbus bench", description=__doc__.split("\n\n")[0],
                                epilog="Writes bench/RESULTS.md.")
    p.add_argument("--quick", action="store_true", help="fewer trials, 3 s throughput windows: "
                   "under two minutes once the gateway's venv exists")
    p.add_argument("--trials", type=int, metavar="N",
                   help="cold starts per system (warm round trips: 10 N); "
                        "default 20, 5 with --quick")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "work", metavar="DIR",
                   help="scratch folder: the gateway's venv, logs, the store (bench/work)")
    p.add_argument("--no-gateway", action="store_true",
                   help="cellbus rows only; installs and starts no Kernel Gateway")
    return p


class Bench:
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
        self.load = [_loadavg()]

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

    # ------------------------------------------------------------------ measurements

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

    async def cold_start(self) -> Row:
        row = Row("cold start: new session → first output of print(2)", "ms",
                  target=("<= 1/50", lambda r: r <= 1 / 50))
        steps: dict[str, dict[str, list[float]]] = {s: {} for s in self.systems()}
        log(f"bench: cold start, {self.trials} trials each")
        for i in range(self.trials):
            for system in self.rotated(i):
                async def trial(system: str = system) -> None:
                    session = self.new_session(system)
                    t0 = clock()
                    try:
                        await session.open(pipelined=True)
                        opened = clock() - t0
                        got = await session.execute(PRINT2)
                        total = clock() - t0
                        assert got.output == "2\n", got.output
                    finally:
                        await session.close()
                    row.samples.setdefault(system, []).append(opened + got.first_output)
                    for step, seconds in session.opened.items():
                        steps[system].setdefault(step, []).append(seconds)
                    steps[system].setdefault(session.first_step, []).append(got.first_output)
                    steps[system].setdefault("(all, to idle)", []).append(total)
                if system not in row.failures:
                    await self.guarded(row, system, trial)
                await self.settle()  # the last trial's teardown and pool refill are over
        self.details.append("Cold start, medians of each step:")
        for system, parts in steps.items():
            text = ", ".join(f"{k} {fmt(statistics.median(v), 'ms')}" for k, v in parts.items())
            self.details.append(f"- {system}: {text}")
        return row

    async def warm(self) -> list[Row]:
        ws = Row("warm round trip, WebSocket: print(2) → reply and output", "ms",
                 target=("<= 1/2", lambda r: r <= 0.5))
        http = Row("warm round trip, HTTP: POST evaluate → update?wait says done", "ms")
        for system in ("jkg", "jkg-nodelay"):
            if system in self.servers:
                http.notes[system] = "n/a (no HTTP execute API)"
        log(f"bench: warm round trips, {self.warm_trials} each")
        sessions: dict[str, WsSession] = {}
        legs: dict[str, dict[str, list[float]]] = {}
        for system in self.systems():
            async def prepare(system: str = system) -> None:
                session = self.new_session(system)
                await session.open()
                sessions[system] = session
                for _ in range(3):
                    await session.execute(PRINT2)
            await self.guarded(ws, system, prepare)
        client: CellbusHttp | None = None
        if "cellbus" in sessions:
            client = CellbusHttp(self.servers["cellbus"].port, "http-warm")
            for _ in range(3):
                await asyncio.to_thread(client.execute, PRINT2)
        try:
            for i in range(self.warm_trials):
                for system in self.rotated(i):
                    if system in sessions and system not in ws.failures:
                        async def trial(system: str = system) -> None:
                            got = await sessions[system].execute(PRINT2)
                            assert got.output == "2\n", got.output
                            ws.samples.setdefault(system, []).append(got.round_trip)
                            for leg, seconds in (got.legs() or {}).items():
                                legs.setdefault(system, {}).setdefault(leg, []).append(seconds)
                        await self.guarded(ws, system, trial)
                    if (system == "cellbus" and client is not None
                            and "cellbus" not in http.failures):
                        async def http_trial() -> None:
                            assert client is not None
                            elapsed, text = await asyncio.to_thread(client.execute, PRINT2)
                            assert text == "2\n", text
                            http.samples.setdefault("cellbus", []).append(elapsed)
                        await self.guarded(http, "cellbus", http_trial)
        finally:
            if client is not None:
                client.close()
            for session in sessions.values():
                await session.close()
        self.details.append("Warm round trip over WebSocket, medians of its legs (from the "
                            "header dates stamped by the cellbus device, which signs for its "
                            "worker, or by ipykernel; wall clock of this one machine):")
        for system, parts in legs.items():
            self.details.append(f"- {system}: " + ", ".join(
                f"{k} {fmt(statistics.median(v), 'ms')}" for k, v in parts.items()))
        return [ws, http]

    async def throughput(self) -> list[Row]:
        row = Row(f"throughput: {SESSIONS} sessions, print(2) back to back", "/s",
                  higher_is_better=True, target=(">= 2", lambda r: r >= 2))
        durable = Row("durable writes under that load: output messages stored/s", "/s",
                      higher_is_better=True)
        burst = Row(f"durable writes, output burst: {SESSIONS} cells each writing "
                    f"{BURST_LINES} alternating stdout/stderr lines", "/s", higher_is_better=True)
        for system in self.systems():
            if system != "cellbus":
                durable.notes[system] = burst.notes[system] = "n/a (stores nothing)"
        log(f"bench: throughput, {SESSIONS} sessions, {self.rounds} x {self.window:.0f} s each")
        pool: dict[str, list[WsSession]] = {}
        cpu: dict[str, dict[str, float]] = {}
        done_total: dict[str, int] = {}
        for system in self.systems():
            async def prepare(system: str = system) -> None:
                sessions = [self.new_session(system) for _ in range(SESSIONS)]
                pool[system] = sessions
                for s in sessions:  # one at a time: jupyter_client's port picking races
                    await s.open()
                for _ in range(3):
                    await asyncio.gather(*(s.execute(PRINT2) for s in sessions))
            await self.guarded(row, system, prepare)
        try:
            for r in range(self.rounds):
                for system in self.rotated(r):
                    if system not in row.failures:
                        async def window(system: str = system) -> None:
                            await self._window(system, pool[system], row, durable, cpu,
                                               done_total)
                        await self.guarded(row, system, window)
            if "cellbus" in pool and "cellbus" not in row.failures:
                for _ in range(self.rounds):
                    await self.guarded(burst, "cellbus",
                                       lambda: self._burst(pool["cellbus"], burst))
        finally:
            for sessions in pool.values():
                await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        self.details.append(f"CPU time per execution during the throughput windows "
                            f"(all {self.rounds} rounds; 'bench client' is this driver):")
        for system, parts in cpu.items():
            n = max(1, done_total.get(system, 0))
            text = ", ".join(f"{k} {v / n * 1e3:.2f} ms" for k, v in
                             sorted(parts.items(), key=lambda kv: -kv[1]))
            self.details.append(f"- {system}: {text} (total "
                                f"{sum(parts.values()) / n * 1e3:.2f} ms)")
        return [row, durable, burst]

    async def _window(self, system: str, sessions: list[WsSession], row: Row, durable: Row,
                      cpu: dict[str, dict[str, float]], done_total: dict[str, int]) -> None:
        server = self.servers[system]
        pids = server.processes()
        before, me = procs.cpu_ticks(pids), os.times()
        started = clock()
        deadline = started + self.window
        done = messages = 0

        async def loop(session: WsSession) -> None:
            nonlocal done, messages
            while clock() < deadline:
                got: Execution = await session.execute(PRINT2)
                if clock() <= deadline:
                    done += 1
                    messages += len(got.seqs)
        await asyncio.gather(*(loop(s) for s in sessions))
        after, me2 = procs.cpu_ticks(pids), os.times()
        tick = os.sysconf("SC_CLK_TCK")
        parts = cpu.setdefault(system, {})
        for label in after:
            parts[label] = parts.get(label, 0.0) + (after[label] - before.get(label, 0)) / tick
        parts["bench client"] = parts.get("bench client", 0.0) + (
            me2.user - me.user + me2.system - me.system)
        done_total[system] = done_total.get(system, 0) + done
        row.samples.setdefault(system, []).append(done / self.window)
        if system == "cellbus":
            durable.samples.setdefault(system, []).append(messages / self.window)
        log(f"bench:   {system}: {done / self.window:.0f} executions/s")

    async def _burst(self, sessions: list[WsSession], row: Row) -> None:
        code = (f"import sys\nfor i in range({BURST_LINES}):\n"
                "    sys.stdout.write(f'{i}\\n'); sys.stderr.write(f'{i}\\n')")
        started = clock()
        results = await asyncio.gather(*(s.execute(code, timeout=120) for s in sessions))
        elapsed = clock() - started
        stored = sum(len(g.seqs) for g in results)
        row.samples.setdefault("cellbus", []).append(stored / elapsed)
        if len(row.samples["cellbus"]) == 1:
            self.details.append(
                f"Output burst: {stored} messages stored and delivered in {elapsed:.2f} s "
                f"({stored // len(sessions)} per cell: each stdout/stderr switch is one "
                "stream message, plus busy, input, reply, idle).")

    async def store_alone(self) -> Row:
        row = Row("durable writes, SQLite store alone (group commit, 100 producers)", "/s",
                  higher_is_better=True)
        for system in self.systems():
            if system != "cellbus":
                row.notes[system] = "n/a"

        async def measure() -> None:
            from bench import store_batching
            from broker.store import MAX_BATCH
            for r in range(self.rounds):
                path = self.work / f"store-alone-{r}.db"
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
                rate, _ = await store_batching.run(path, max_batch=MAX_BATCH, messages=4000,
                                                   producers=100)
                row.samples.setdefault("cellbus", []).append(rate)
        log("bench: SQLite store alone")
        await self.guarded(row, "cellbus", measure)
        return row

    async def memory(self) -> Row:
        row = Row("idle session memory: PSS of one idle session's processes / ipykernel", "MB",
                  target=("<= 1/4", lambda r: r <= 0.25))
        extra: dict[str, dict[str, list[float]]] = {}
        log(f"bench: idle memory, {self.mem_trials} sessions each")
        for i in range(self.mem_trials):
            for system in self.rotated(i):
                async def trial(system: str = system) -> None:
                    session = self.new_session(system)
                    try:
                        await session.open()
                        got = await session.execute("import os; print(os.getpid(), os.getuid())")
                        pid, uid = map(int, got.output.split())
                        mine = self.servers[system].processes()
                        # A sandboxed worker sees its own PID namespace; it is found by its
                        # uid (one per live session), with its namespace's init beside it.
                        pids = [pid] if uid == 0 else procs.pids_of_uid(uid)
                        assert pids and all(p in mine for p in pids), "not under the server"
                        await asyncio.sleep(1.0)  # idle
                        mem = procs.smaps_total(pids)
                        others = sum(1 for label in self.servers[system].processes().values()
                                     if label in ("workers", "kernels")) - 1
                    finally:
                        await session.close()
                    row.samples.setdefault(system, []).append(mem["pss"])
                    for k, v in (("USS", mem["uss"]), ("RSS", mem["rss"]),
                                 ("other workers/kernels alive", others)):
                        extra.setdefault(system, {}).setdefault(k, []).append(v)
                if system not in row.failures:
                    await self.guarded(row, system, trial)
        self.details.append("Idle session memory, medians (PSS splits shared pages among the "
                            "processes sharing them: cellbus workers fork from a preloaded "
                            "template, each ipykernel is its own interpreter):")
        for system, parts in extra.items():
            self.details.append(f"- {system}: " + ", ".join(
                (f"{k} {fmt(statistics.median(v), 'MB')}" if k in ("USS", "RSS")
                 else f"{k} {statistics.median(v):.0f}") for k, v in parts.items()))
        return row

    async def interact(self) -> Row:
        """A live @interact slider moved: interact_request -> the re-run's output and reply."""
        row = Row("interact update: new slider value → new output", "ms")
        row.notes = {s: "n/a (no interact)" for s in self.systems() if s != "cellbus"}
        if "cellbus" not in self.servers:
            return row
        log(f"bench: interact updates, {self.warm_trials}")

        async def measure() -> None:
            session = self.new_session("cellbus")
            await session.open()
            try:
                shown = await session.execute(INTERACT)
                assert shown.interacts, "the @interact showed no controls"
                for state in range(1, self.warm_trials + 1):
                    got = await session.run("interact_request", {
                        "interact_id": shown.interacts[0], "values": {"n": state % 100},
                        "state": state}, "slider")
                    assert got.output == f"n = {state % 100}\n", got.output
                    row.samples.setdefault("cellbus", []).append(got.round_trip)
            finally:
                await session.close()
        await self.guarded(row, "cellbus", measure)
        return row

    async def run(self) -> list[Row]:
        await self.start()
        rows = [await self.cold_start(), *await self.warm()]
        tp, durable, burst = await self.throughput()
        rows += [tp, await self.interact(), await self.memory(), durable, burst,
                 await self.store_alone()]
        return rows

    def facts(self) -> dict[str, str]:
        """What the report's head needs from this run."""
        return {"load": f"{self.load[0]} / {_loadavg()}", "command": os.environ.get(
            "CELLBUS_BENCH_COMMAND") or shlex.join([os.path.relpath(sys.executable, ROOT),
                                                    os.path.relpath(__file__, ROOT),
                                                    *sys.argv[1:]]),
                "trials": f"cold start {self.trials} per system, warm round trips "
                          f"{self.warm_trials}, throughput {self.rounds} x {self.window:.0f} s "
                          f"windows, idle memory {self.mem_trials} sessions; systems "
                          "interleaved trial by trial"}


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    args = parser().parse_args()
    bench = Bench(args)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    try:
        rows = asyncio.run(bench.run())
    except KeyboardInterrupt:
        log("bench: interrupted")
        return 130
    except Exception as e:
        log(f"bench: could not run: {type(e).__name__}: {e}")
        traceback.print_exc()
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        bench.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    results = ROOT / "bench" / "RESULTS.md"
    text = report.write(results, rows, bench.systems(), bench.details, bench.versions,
                        bench.facts(), time.monotonic() - started)
    print("\n" + text)
    log(f"bench: wrote {os.path.relpath(results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

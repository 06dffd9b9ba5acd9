"""The bench's load rows: throughput of many sessions, durable writes (under that load, in
an output burst, and the SQLite store alone), and the memory of an idle session.

See bench/compare.py, which runs them.
"""

from __future__ import annotations

import asyncio
import os
import statistics
from pathlib import Path

from bench import procs
from bench.drivers import Execution, WsSession, clock
from bench.report import Row, fmt
from bench.rig import PRINT2, Rig, log

SESSIONS = 8
BURST_LINES = 500


class Load(Rig):
    """What the systems sustain, store and hold in memory."""

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

"""The bench's latency rows: cold start, warm round trip (WebSocket and HTTP), interact.

Each trial runs on every system in turn (:meth:`Rig.rotated`); see bench/compare.py.
"""

from __future__ import annotations

import asyncio
import statistics

from bench.drivers import CellbusHttp, WsSession, clock
from bench.report import Row, fmt
from bench.rig import PRINT2, Rig, log

INTERACT = "@interact\ndef f(n=(0, 99)):\n    print('n =', n)"


class Latency(Rig):
    """How long one request takes, from a new session or a warm one."""

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

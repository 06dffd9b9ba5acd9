"""The open-sessions curve for Jupyter Kernel Gateway beside cellbus's, as far as it goes.

Each kernel is a separate ipykernel process (~40-60 MB), so KG stops long before 1,000
on most machines: a level is run only if the memory it needs (PSS per kernel at the level
before, times the kernels to add, plus a 25 % margin) is free, and only if the level before
opened its kernels within ``budget`` seconds; where it stopped and why is recorded.
"""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

from bench import procs
from bench.drivers import KernelGatewaySession, WsSession, clock


def _available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


async def _first_output(port: int, kept: list[KernelGatewaySession]) -> float:
    """Seconds from ``POST /api/kernels`` to the first ``print(1)``'s output."""
    t0 = clock()
    s = KernelGatewaySession(port)
    await s.open()
    t1 = clock()
    run = await s.execute("print(1)")
    await WsSession.close(s)  # the socket only: the kernel stays
    kept.append(s)
    assert run.first_output is not None
    return t1 - t0 + run.first_output


async def open_kernels(work: Path, levels: list[int], trials: int, budget: float,
                       log=print) -> tuple[list, str]:
    """(rows as bench.scale.Level, why it stopped or "")."""
    from bench.scale import Level
    venv, _ = procs.jkg_venv(work, log)
    kg = procs.KernelGateway(work, procs.free_port(), venv, nodelay=True)
    kg.start()
    rows: list[Level] = []
    kept: list[KernelGatewaySession] = []
    stopped = ""
    try:
        kg.wait_ready()
        keep = KernelGatewaySession(kg.port)
        await keep.open()
        await keep.execute("x = 1")
        opened, took = 1, 0.0
        for level in levels:
            need = (level - opened) * (rows[-1].pss_total / rows[-1].sessions if rows else 0)
            if need * 1.25 > _available():
                stopped = (f"stopped before {level} kernels: they would need "
                           f"{need / 2**30:.1f} GiB more, {_available() / 2**30:.1f} GiB free")
                break
            if took > budget:
                stopped = (f"stopped before {level} kernels: the level before took "
                           f"{took:.0f} s to open (budget {budget:.0f} s)")
                break
            t0 = clock()
            while opened < level:
                await _first_output(kg.port, kept)
                opened += 1
            took = clock() - t0
            log(f"scale: KG {opened} kernels open ({took:.1f} s to open the last ones)")
            await asyncio.sleep(1)
            pss = sum(procs.smaps_rollup(p)["pss"] for p in procs.descendants(kg.proc.pid)
                      if procs._stat(p) is not None)
            pids = {kg.proc.pid: "gateway", **{p: "kernels"
                                               for p in procs.descendants(kg.proc.pid)}}
            before = procs.cpu_ticks(pids)
            await asyncio.sleep(5)
            after = procs.cpu_ticks(pids)
            cpu = {k: (after.get(k, 0) - before.get(k, 0)) / 100 / 5 for k in after}
            new = [await _first_output(kg.port, kept) for _ in range(trials)]
            opened += trials
            warm = statistics.median([(await keep.execute("print(1)")).round_trip
                                      for _ in range(4 * trials)])
            rows.append(Level(level, pss, statistics.median(new), warm, cpu))
            log(f"scale: KG {rows[-1]}")
        await keep.close()
    finally:
        kg.stop()
    return rows, stopped

"""cellbus's Jupyter API against Jupyter Kernel Gateway, over the same protocol.

    .venv/bin/python bench/jupyter_api.py [--quick] [--trials N] [--work DIR]

One driver, bench/drivers.py's :class:`KernelGatewaySession` (``POST /api/kernels``, the
channels WebSocket in Jupyter's JSON frames, ``DELETE`` at the end), runs against cellbus's
gateway (gateway/jupyter/) and against the Kernel Gateway, stock and with TCP_NODELAY, as
bench/compare.py starts them: cold start, warm round trip and throughput, trials interleaved.
The table goes into its own section of bench/RESULTS.md, which ``bin/cellbus bench`` keeps.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.compare import Bench, log, parser  # noqa: E402
from bench.drivers import KernelGatewaySession, WsSession  # noqa: E402
from bench.report import Row  # noqa: E402

TITLE = "Jupyter API: cellbus and Kernel Gateway, one Jupyter client (bench/jupyter_api.py)"


class JupyterApiBench(Bench):
    """bench/compare.py's measurements, every system driven as a Jupyter kernels server."""

    def new_session(self, system: str) -> WsSession:
        return KernelGatewaySession(self.servers[system].port)

    async def _burst(self, sessions: list[WsSession], row: Row) -> None:
        """Not measured here: the burst row counts cellbus's seqs, which Jupyter's API hides."""

    async def run(self) -> list[Row]:
        await self.start()
        cold = await self.cold_start()
        ws, _ = await self.warm()
        tp, _, _ = await self.throughput()
        return [cold, ws, tp]


def main() -> int:
    bench = JupyterApiBench(parser().parse_args())
    started = time.monotonic()
    try:
        rows = asyncio.run(bench.run())
    finally:
        bench.stop()
    facts = bench.facts()
    body = "\n".join([
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average (1 min) at start / "
        f"end: {facts['load']} (a 2-core machine shared with other work: noisy)",
        f"- command: `.venv/bin/python bench/jupyter_api.py {' '.join(sys.argv[1:])}`",
        f"- trials: cold start {bench.trials} per system, warm round trips "
        f"{bench.warm_trials}, throughput {bench.rounds} x {bench.window:.0f} s windows; "
        "systems interleaved trial by trial",
        "- every system is driven by the same client over the same protocol: POST "
        "/api/kernels, WS /api/kernels/ID/channels (JSON frames), DELETE /api/kernels/ID; "
        "the cellbus column is its Jupyter API (gateway/jupyter/), with its store, sandbox "
        "and placement",
        "", report.table(rows, bench.systems()), "", *bench.details, "",
        f"Took {time.monotonic() - started:.0f} s."])
    print(body)
    report.keep_section(ROOT / "bench" / "RESULTS.md", TITLE, body)
    log("bench: wrote the Jupyter API section of bench/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.latency import Latency  # noqa: E402
from bench.load import Load  # noqa: E402
from bench.report import Row  # noqa: E402
from bench.rig import log, loadavg  # noqa: E402

__all__ = ["Bench", "log", "parser"]


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


class Bench(Latency, Load):
    """Every row, in the table's order (bench/rig.py runs the trials, bench/latency.py and
    bench/load.py measure)."""

    async def run(self) -> list[Row]:
        await self.start()
        rows = [await self.cold_start(), *await self.warm()]
        tp, durable, burst = await self.throughput()
        rows += [tp, await self.interact(), await self.memory(), durable, burst,
                 await self.store_alone()]
        return rows

    def facts(self) -> dict[str, str]:
        """What the report's head needs from this run."""
        return {"load": f"{self.load[0]} / {loadavg()}", "command": os.environ.get(
            "CELLBUS_BENCH_COMMAND") or shlex.join([os.path.relpath(sys.executable, ROOT),
                                                    os.path.relpath(__file__, ROOT),
                                                    *sys.argv[1:]]),
                "trials": f"cold start {self.trials} per system, warm round trips "
                          f"{self.warm_trials}, throughput {self.rounds} x {self.window:.0f} s "
                          f"windows, idle memory {self.mem_trials} sessions; systems "
                          "interleaved trial by trial"}


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

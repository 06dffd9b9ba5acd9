"""Another user's cell latency while one user floods output from many sessions.

    .venv/bin/python bench/fair_share.py [--sessions 1,4,16] [--trials 5] [--devices 1]

Starts a chain (broker on a fresh SQLite file, one device, one gateway; no auth, so user
names come from URLs and no per-user session cap applies), has ``ann`` run N cells, each in a
worksheet of its own, that print 4 KiB lines without end (each flushed), waits until all of
them have output stored, then times ``bob``'s cells: per trial a first cell in a new
worksheet (a new session) and two more cells in it, each from POST evaluate to ``/update``
saying done with its output. Prints the median and max of first and later cells per N.
With ``--devices D``, D devices share the sessions (the broker places them), so ann holds a
``--user-outbox`` share on each of the devices her sessions run on, and her records from
all of them meet bob's in the broker's store batches.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from harness import Chain, NodeProcess, stop_nodes, until  # noqa: E402
from protocol.config import generate_key  # noqa: E402

FLOOD = ("import sys\nwhile True:\n    sys.stdout.write('x' * 4095 + '\\n')\n"
         "    sys.stdout.flush()\n")


def timed_cell(chain: Chain, cell: str, code: str) -> float:
    """Seconds from the evaluate to a finished cell with its output."""
    began = time.monotonic()
    status, answer = chain.evaluate(cell, code)
    assert status == 202, (status, answer)
    doc = chain.wait_done(cell, timeout=120)
    took = time.monotonic() - began
    assert doc["status"] == "done", doc
    return took


def stored(db: str) -> int:
    """Output messages stored so far (the sessions' last seqs, read from the SQLite file:
    an ``/update`` of a flood cell is a document that grows without end, and with several
    devices flooding one took over 60 s to come)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT coalesce(sum(last), 0) FROM seqs").fetchone()[0])


def flooding(db: str) -> int:
    """Sessions with output stored (more than their cell's busy and input)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT count(*) FROM seqs WHERE last > 4").fetchone()[0])


def one_load(sessions: int, trials: int, device: list[str], devices: int = 1
             ) -> tuple[list[float], list[float], float]:
    """bob's first-cell and later-cell seconds while ann floods from ``sessions`` sessions,
    and ann's output stored meanwhile, in MiB/s (each message a 4 KiB line)."""
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "key"
        generate_key(key_file)
        nodes: list[NodeProcess] = []
        chain = Chain(key_file, f"sqlite:///{tmp}/cellbus.db", nodes)
        try:
            chain.start_broker("--user-sessions", "0", "--user-output", "0", "--cell-output", "0")
            for _ in range(devices):
                chain.start_device("--max-sessions", str(sessions + 8), "--max-output",
                                   str(2**40), "--exec-timeout", "0", *device)
            chain.start_gateway()
            for n in range(sessions):
                assert chain.evaluate(f"ann/flood{n}/1", FLOOD)[0] == 202
            until(lambda: flooding(f"{tmp}/cellbus.db") >= sessions,
                  f"output stored by each of ann's {sessions} floods", 120)
            first, later = [], []
            began, before = time.monotonic(), stored(f"{tmp}/cellbus.db")
            for t in range(trials):
                first.append(timed_cell(chain, f"bob/ws{t}/1", f"print({t})"))
                for c in (2, 3):
                    later.append(timed_cell(chain, f"bob/ws{t}/{c}", f"print({c})"))
            rate = (stored(f"{tmp}/cellbus.db") - before) * 4096 / 2**20 / (
                time.monotonic() - began)
            return first, later, rate
        finally:
            stop_nodes(nodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", default="1,4,16", help="ann's flooding sessions, each run")
    parser.add_argument("--trials", type=int, default=5, help="bob's new worksheets per run")
    parser.add_argument("--user-outbox", metavar="BYTES",
                        help="the device's --user-outbox (default: the device's default)")
    parser.add_argument("--devices", type=int, default=1,
                        help="devices sharing the sessions (ann's on several devices)")
    args = parser.parse_args()
    device = ["--user-outbox", args.user_outbox] if args.user_outbox else []
    print("ann's sessions | bob first cell: median, max | later cells: median, max (s) "
          "| ann stored MiB/s")
    for n in (int(s) for s in args.sessions.split(",")):
        first, later, rate = one_load(n, args.trials, device, args.devices)
        print(f"{n:>14} | {statistics.median(first):6.2f} {max(first):6.2f}"
              f"             | {statistics.median(later):6.2f} {max(later):6.2f}"
              f"                | {rate:6.1f}", flush=True)


if __name__ == "__main__":
    main()

"""Soak: steady load through a real ``bin/cellbus up`` with a short retention, and the store's
size on disk over time. A benchmark, not a test: it prints the curve and whether it levelled
off.

    .venv/bin/python bench/soak.py [--minutes 10] [--retention 30s] [--sample 10] [--clients 6]

``--clients`` users each open a fresh worksheet, evaluate a cell that streams ``--lines``
lines ``--reruns`` times, ``--pause`` seconds apart (each run replaces the last one's
output, as when someone edits and runs a cell again), evaluate one more short cell, and move
on to the next worksheet, for ``--minutes``. Finished worksheets are compacted by the broker
once ``--retention`` has passed. Every ``--sample`` seconds the script reads the SQLite file
(database + ``-wal`` + ``-shm``) and counts its rows: messages kept, messages ever given a
seq, requests.

Levelled off means: over the last 40 % of the run the file grew at most 15 % as fast as it did
before the first compaction could act, while messages kept only a fraction of those written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broker.retention import cadence, format_duration, parse_duration  # noqa: E402
from procs import free_port  # noqa: E402

STREAM = ("import time\nfor i in range({lines}):\n    print('run {run} line', i, 'x' * 60, "
          "flush=True)\n    time.sleep(0.002)")
#: Level-off rule (see the module docstring).
LATE_SHARE = 0.4
MAX_LATE_RATIO = 0.15


@dataclass
class Sample:
    t: float
    size: int
    messages: int
    written: int
    requests: int
    evaluated: int


@dataclass
class Load:
    """What the clients did so far (shared by their threads)."""

    evaluated: int = 0
    refused: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str, note: str = "") -> None:
        with self.lock:
            setattr(self, what, getattr(self, what) + 1)
            if note and len(self.errors) < 5:
                self.errors.append(note)


def http(port: int, method: str, path: str, body: dict[str, Any] | None = None,
         timeout: float = 60) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read() or b"{}")


def evaluate(port: int, cell: str, code: str, load: Load, stop: threading.Event) -> None:
    """Evaluate ``code`` in ``cell`` and wait until it is done (retrying a 503)."""
    while not stop.is_set():
        status, reply = http(port, "POST", f"/home/{cell}/evaluate", {"input": code})
        if status == 503:
            load.count("refused")
            stop.wait(float(reply.get("retry_after", 1)) if isinstance(reply, dict) else 1)
            continue
        if status != 202:
            load.count("failed", f"{cell}: {status} {reply}")
            return
        break
    deadline = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < deadline:
        status, doc = http(port, "GET", f"/home/{cell}/update?wait=10")
        if status == 200 and doc["status"] in ("done", "error"):
            load.count("evaluated" if doc["status"] == "done" else "failed",
                       "" if doc["status"] == "done" else f"{cell}: {doc['output']}")
            return


def client(n: int, port: int, args: argparse.Namespace, load: Load,
           stop: threading.Event) -> None:
    sheet = 0
    while not stop.is_set():
        ws = f"soak{n}/ws{sheet}"
        for run in range(args.reruns):
            evaluate(port, f"{ws}/1", STREAM.format(lines=args.lines, run=run), load, stop)
            stop.wait(args.pause)
        evaluate(port, f"{ws}/2", "print('done', 6 * 7)", load, stop)
        stop.wait(args.pause)
        sheet += 1


def measure(db: Path, t: float, evaluated: int) -> Sample:
    size = sum(os.stat(f"{db}{s}").st_size for s in ("", "-wal", "-shm")
               if os.path.exists(f"{db}{s}"))
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        messages = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        written = conn.execute("SELECT COALESCE(SUM(last), 0) FROM seqs").fetchone()[0]
        requests = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    finally:
        conn.close()
    return Sample(t, size, messages, written, requests, evaluated)


def slope(samples: list[Sample]) -> float:
    """Least-squares growth of the size, bytes per minute."""
    if len(samples) < 2:
        return 0.0
    mt = sum(s.t for s in samples) / len(samples)
    ms = sum(s.size for s in samples) / len(samples)
    var = sum((s.t - mt) ** 2 for s in samples)
    return 60 * sum((s.t - mt) * (s.size - ms) for s in samples) / var if var else 0.0


def report(samples: list[Sample], retention: float, load: Load) -> None:
    print(f"\n{'t (s)':>7} {'size (bytes)':>14} {'messages':>9} {'written':>9} "
          f"{'requests':>9} {'cells run':>9}")
    for s in samples:
        print(f"{s.t:7.0f} {s.size:14,d} {s.messages:9,d} {s.written:9,d} {s.requests:9,d} "
              f"{s.evaluated:9,d}")
    first_pass = retention + cadence(retention)
    early = [s for s in samples if s.t <= first_pass]
    late = [s for s in samples if s.t >= samples[-1].t * (1 - LATE_SHARE)]
    e, lt = slope(early), slope(late)
    end = samples[-1]
    ratio = lt / e if e > 0 else float("inf")
    levelled = e > 0 and ratio <= MAX_LATE_RATIO
    print(f"\ngrowth before the first compaction (t <= {first_pass:.0f} s): {e:,.0f} bytes/min; "
          f"over the last {LATE_SHARE:.0%}: {lt:,.0f} bytes/min ({ratio:.1%} of it)")
    print(f"messages kept {end.messages:,d} of {end.written:,d} written "
          f"({end.messages / max(end.written, 1):.1%}); cells run {load.evaluated:,d}, "
          f"failed {load.failed}, 503 retried {load.refused}")
    print(f"levelled off: {'yes' if levelled else 'no'}")
    for note in load.errors:
        print(f"  failure: {note[:300]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="length of the run")
    p.add_argument("--retention", default="30s", help="the broker's --retention")
    p.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--clients", type=int, default=6, help="users evaluating at once")
    p.add_argument("--reruns", type=int, default=6, help="runs of the streaming cell each")
    p.add_argument("--lines", type=int, default=40, help="lines the streaming cell prints")
    p.add_argument("--devices", type=int, default=2, help="devices `up` starts")
    p.add_argument("--pause", type=float, default=0.1,
                   help="seconds a client waits between two evaluations")
    args = p.parse_args()
    retention = parse_duration(args.retention)
    work = Path(tempfile.mkdtemp(prefix="cellbus-soak-"))
    db, port = work / "soak.db", free_port()
    log = (ROOT / "bench" / "work")
    log.mkdir(parents=True, exist_ok=True)
    log_path = log / "soak-up.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLBUS_")}
    env.update(XDG_RUNTIME_DIR=str(work), TMPDIR=str(work))
    with open(log_path, "wb") as log_file:
        up = subprocess.Popen(
            [str(ROOT / "bin" / "cellbus"), "up", "--port", str(port), "--store",
             f"sqlite:///{db}", "--devices", str(args.devices), "--idle-timeout", "2",
             "--retention", args.retention, "--log-level", "INFO"],
            stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "cellbus is up" not in log_path.read_text(errors="replace"):
            if up.poll() is not None or time.monotonic() > deadline:
                print(f"cellbus up did not start; see {log_path}", file=sys.stderr)
                return 1
            time.sleep(0.2)
        print(f"soak: {args.minutes:g} min, {args.clients} clients, retention "
              f"{format_duration(retention)} (a pass every {format_duration(cadence(retention))}),"
              f" store {db}, log {log_path}", flush=True)
        load, stop = Load(), threading.Event()
        threads = [threading.Thread(target=client, args=(n, port, args, load, stop), daemon=True)
                   for n in range(args.clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        samples: list[Sample] = []
        end = started + args.minutes * 60
        while True:
            now = time.monotonic()
            samples.append(measure(db, now - started, load.evaluated))
            s = samples[-1]
            print(f"  t={s.t:5.0f} s  size={s.size:12,d}  messages={s.messages:8,d}  "
                  f"written={s.written:8,d}  requests={s.requests:6,d}  cells={s.evaluated}",
                  flush=True)
            if now >= end:
                break
            time.sleep(min(args.sample, max(0.0, end - now)))
        stop.set()
        for thread in threads:
            thread.join(30)
        report(samples, retention, load)
        compactions = [line for line in log_path.read_text(errors="replace").splitlines()
                       if "broker retention: compacted" in line]
        print(f"compaction passes that reclaimed something: {len(compactions)}; last:")
        print(f"  {compactions[-1] if compactions else '(none)'}")
        return 0
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""The comparison's table: medians with p90, the ratio cellbus / the better Kernel Gateway,
and each target as information; and ``bench/RESULTS.md``."""

from __future__ import annotations

import importlib.metadata
import math
import platform
import re
import statistics
import subprocess
import time
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass, field


def p90(xs: list[float]) -> float:
    """Nearest-rank 90th percentile (for throughput rows, where higher is better, the
    10th: the slow end, as p90 is for latencies)."""
    s = sorted(xs)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def p10(xs: list[float]) -> float:
    s = sorted(xs)
    return s[max(0, math.ceil(0.1 * len(s)) - 1)]


@dataclass
class Row:
    """One measurement: samples per system ("cellbus", "jkg", "jkg-nodelay"), or a note."""

    name: str
    unit: str                      # "ms", "/s", "MB"
    higher_is_better: bool = False
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)   # system -> text instead of numbers
    failures: dict[str, list[str]] = field(default_factory=dict)  # system -> what failed
    target: tuple[str, Callable[[float], bool]] | None = None  # ("<= 1/50", test of ratio)

    def median(self, system: str) -> float | None:
        xs = self.samples.get(system)
        return statistics.median(xs) if xs else None

    def cell(self, system: str) -> str:
        if system in self.notes:
            return self.notes[system]
        xs, failed = self.samples.get(system), self.failures.get(system, [])
        if not xs:
            return f"failed: {failed[0]}" if failed else "—"
        tail = p10(xs) if self.higher_is_better else p90(xs)
        text = f"{fmt(statistics.median(xs), self.unit)} ({fmt(tail, self.unit)})"
        return text + (f" + {len(failed)} failed" if failed else "")

    def best_jkg(self) -> tuple[str, float] | None:
        found = [(s, m) for s in ("jkg", "jkg-nodelay") if (m := self.median(s)) is not None]
        if not found:
            return None
        pick = max if self.higher_is_better else min
        return pick(found, key=lambda sm: sm[1])

    def ratio(self) -> float | None:
        ours, best = self.median("cellbus"), self.best_jkg()
        if ours is None or best is None or best[1] == 0:
            return None
        return ours / best[1]

    def verdict(self) -> str:
        ratio = self.ratio()
        if self.target is None:
            return ""
        text, ok = self.target
        if ratio is None:
            return f"{text}: not measured"
        return f"{text}: {'met' if ok(ratio) else 'NOT met'}"


def fmt(value: float, unit: str) -> str:
    if unit == "ms":
        v = value * 1e3
        return f"{v:.3g} ms" if v < 100 else f"{v:.0f} ms"
    if unit == "MB":
        return f"{value / 1e6:.1f} MB"
    if unit == "/s":
        return f"{value:.0f}/s"
    return f"{value:.3g} {unit}"


COLUMNS = {"cellbus": "cellbus", "jkg": "JKG stock", "jkg-nodelay": "JKG TCP_NODELAY"}


def table(rows: list[Row], systems: list[str]) -> str:
    """A Markdown table, also readable as plain text; gateway columns only if they ran."""
    columns = [s for s in COLUMNS if s in systems]
    compared = len(columns) > 1
    headings = ("measurement", *(COLUMNS[s] for s in columns),
                *(("cellbus / best JKG", "target (ratio)") if compared else ()))
    body = []
    for row in rows:
        cells = [row.name, *(row.cell(s) for s in columns)]
        if compared:
            ratio, best = row.ratio(), row.best_jkg()
            cells.append("n/a" if ratio is None or best is None else
                         f"{ratio:.3g} (vs {'nodelay' if best[0] == 'jkg-nodelay' else 'stock'})")
            cells.append(row.verdict())
        body.append(tuple(cells))
    widths = [max(len(r[i]) for r in (headings, *body)) for i in range(len(headings))]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(headings), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(line(r) for r in body)])


HOW = """\
How to read it: each cell is the median, then p90 in brackets (for rates, the 10th
percentile: the slow end). The ratio is cellbus over the better of the two gateways
(stock Jupyter Kernel Gateway leaves Nagle's algorithm on, so its small messages wait
for delayed ACKs; the bench also runs it with TCP_NODELAY forced on every socket by a
launcher it writes, and beating that stall is no win). Targets are information, not a
test. This is a noisy 2-core machine: ratios within one run are what count, not absolute
numbers. One client (bench/drivers.py) drives all three over WebSocket and sets
TCP_NODELAY on its own sockets; it shares the machine's cores with the systems it
measures. Cold start includes opening the session and its WebSocket (cellbus: connect, then
subscribe_request and execute_request sent back to back, as cellbus.js does on a new page;
the gateway: POST /api/kernels + connect, then execute_request); each one starts once no
process of any system has used CPU for 100 ms (at most 3 s), so none pays for the
teardown of the one before it. Idle PSS: Pss in
/proc/PID/smaps_rollup of the process that ran `import os; print(os.getpid())`, one
second after it went idle."""


def write(path: Path, rows: list[Row], systems: list[str], details: list[str],
          versions: dict[str, str], facts: dict[str, str], took: float) -> str:
    """Write RESULTS.md; returns what it wrote below its title, to print."""
    root = path.resolve().parent.parent
    mem = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    commit = _git(root, "rev-parse", "--short", "HEAD")
    dirty = " + uncommitted changes" if _git(root, "status", "--porcelain") else ""
    ours = {"python": platform.python_version(),
            "cellbus": f"{_version('cellbus')} (git {commit}{dirty})",
            "tornado": _version("tornado"), "pyzmq": _version("pyzmq")}
    head = [f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
            f"- machine: nproc {_run('nproc')}, memory "
            f"{int(mem.group(1)) / 1024 ** 2 if mem else 0:.1f} GiB "
            f"({platform.machine()}, Linux {platform.release()})",
            f"- load average (1 min) at start / end: {facts['load']} (other work on the "
            "machine shows here)",
            "- versions: " + ", ".join(f"{k} {v}" for k, v in {**ours, **versions}.items()),
            f"- command: `{facts['command']}`",
            f"- trials: {facts['trials']}"]
    text = "\n".join([*head, "", table(rows, systems), "", *details, "",
                      f"Took {took:.0f} s."])
    kept = _kept(path)
    path.write_text("\n".join(["# cellbus vs Jupyter Kernel Gateway", "",
                               "Written by `bin/cellbus bench` (bench/compare.py); each run "
                               "overwrites it, except the sections other benches keep here "
                               "(at the end).", "", text, "", HOW, "", *kept]))
    return text


KEPT = re.compile(r"<!-- kept: (.+?) -->\n.*?<!-- /kept -->\n", re.S)


def _kept(path: Path) -> list[str]:
    return [m.group(0) for m in KEPT.finditer(path.read_text())] if path.exists() else []


def keep_section(path: Path, title: str, body: str) -> None:
    """Put ``body`` under ``## title`` in RESULTS.md, replacing that section if it is there;
    ``bin/cellbus bench`` keeps such sections when it rewrites the file."""
    section = f"<!-- kept: {title} -->\n## {title}\n\n{body}\n<!-- /kept -->\n"
    text = path.read_text() if path.exists() else ""
    sections = {m.group(1): m for m in KEPT.finditer(text)}
    if title in sections:
        m = sections[title]
        text = text[:m.start()] + section + text[m.end():]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def _run(*argv: str) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def _git(root: Path, *args: str) -> str:
    return _run("git", "-C", str(root), *args)


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"

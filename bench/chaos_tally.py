"""What became of each accepted cell of bench/chaos.py, and the table of all of them.

A cell is judged by its document as the gateway serves it at the end (``update?since=0``):
its status, its error blocks, and the numbered lines ``TAG 0`` .. ``TAG n-1`` it printed, in
the order they were stored. The columns are defined in bench/chaos.py's docstring.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from typing import Any


#: The errors of a death a fault caused: the device's, or (``worker-kill``) the worker's.
DEATHS = ("DeviceLost", "WorkerDied")


@dataclass
class Cell:
    """One accepted cell: its address, the tag of its lines, and when it was posted, accepted
    (202) and first seen ended; ``doc`` is its document as read at the end."""

    cell: str
    tag: str
    posted: float
    accepted: float = 0.0
    ended: float | None = None  # when a client first saw it done or error
    doc: dict[str, Any] | None = None


@dataclass
class Tally:
    """The counts of one fault's scenario (a row of the table)."""

    fault: str
    faults: int = 0
    accepted: int = 0
    complete: int = 0
    lost: int = 0
    dup_lines: int = 0
    reordered: int = 0
    stuck: int = 0
    false_errors: int = 0
    device_lost: int = 0
    refused: int = 0  # answers other than 202 to an evaluate (retried)
    tracebacks: int = 0
    times: list[float] = field(default_factory=list)
    rss: dict[str, tuple[float, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: str = ""

    def note(self, text: str) -> None:
        if len(self.notes) < 12:
            self.notes.append(text)


def count(t: Tally, cell: Cell, lines: int, exposed: bool) -> None:
    """Judge one accepted cell by its final document; ``exposed``: its device was killed
    while it was in flight. (The columns are defined in bench/chaos.py's docstring.)"""
    t.accepted += 1
    if cell.ended is None or cell.doc is None or cell.doc["status"] not in ("done", "error"):
        t.stuck += 1
        t.note(f"stuck: {cell.cell} ({cell.doc['status'] if cell.doc else 'unreadable'})")
        return
    doc = cell.doc
    errors = [b for b in doc["output"].values() if b.get("type") == "error"]
    text = "".join(b["content"] for b in sorted(doc["output"].values(),
                                                 key=lambda b: b["order"])
                   if b.get("type") == "text" and b.get("stream") == "stdout")
    got = numbers(text, cell.tag)
    want = list(range(lines))
    dups = len(got) - len(set(got))
    late = sum(1 for i, x in enumerate(got) if i and x < max(got[:i]))
    gap = bool(got) and set(range(max(got) + 1)) - set(got)
    lost = (doc["status"] == "done" and sorted(set(got)) != want) or bool(gap)
    device_lost = [e for e in errors if e.get("ename") in DEATHS]
    false = bool(errors) and (not exposed or doc["status"] == "done"
                              or (device_lost and sorted(set(got)) == want)
                              or not device_lost)
    t.dup_lines += dups
    t.reordered += late
    t.lost += lost
    t.false_errors += false
    t.device_lost += bool(device_lost) and not false
    if not errors and doc["status"] == "done" and got == want:
        t.complete += 1
        t.times.append(cell.ended - cell.accepted)
    if lost or dups or late or false:
        t.note(f"{cell.cell}: status {doc['status']}, {len(got)} lines, missing "
               f"{sorted(set(want) - set(got))[:8]}, {dups} repeated, {late} out of order, "
               f"errors {[(e.get('ename'), e.get('evalue')) for e in errors]}")


def numbers(text: str, tag: str) -> list[int]:
    """The line numbers of ``tag``'s lines in ``text``, in the order they were stored."""
    return [int(m.group(1)) for m in re.finditer(rf"^{re.escape(tag)} (\d+)$", text, re.M)]


def table(tallies: list[Tally]) -> str:
    """The markdown table of every scenario, as bench/RESULTS.md shows it."""
    head = ("| fault | faults | accepted | complete | lost | dup lines | reordered | stuck "
            "| false errors | DeviceLost | median s | max s | broker MiB | gateway MiB "
            "| device MiB |")
    rows = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for t in tallies:
        if t.skipped:
            rows.append(f"| {t.fault} | skipped: {t.skipped} |" + " |" * 13)
            continue
        med = f"{statistics.median(t.times):.1f}" if t.times else "-"
        top = f"{max(t.times):.1f}" if t.times else "-"
        mem = " | ".join(f"{t.rss[n][0]:.0f} → {t.rss[n][1]:.0f}"
                         for n in ("broker", "gateway", "device"))
        rows.append(f"| {t.fault} | {t.faults} | {t.accepted} | {t.complete} | {t.lost} "
                    f"| {t.dup_lines} | {t.reordered} | {t.stuck} | {t.false_errors} "
                    f"| {t.device_lost} | {med} | {top} | {mem} |")
    return "\n".join(rows)

"""Messages persisted per second by the SQLite store: group commit vs. one commit each.

    .venv/bin/python bench/store_batching.py [--messages 4000] [--producers 100] [--repeat 5]

``--producers`` tasks (one session each, like the broker's output from that many sessions)
each append their share of messages one call at a time, awaiting every call, as the broker
does before publishing. The only difference between the two runs is ``max_batch``: the
default (group commit) vs. 1 (one transaction and commit per message). Prints the median
rate of each and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from broker.store import MAX_BATCH, sqlite_url
from broker.store.sqlite import SQLiteStore


def message(session: str, i: int) -> dict[str, Any]:
    """A typical stream message (~300 bytes packed)."""
    header = {"msg_id": f"{session}-{i}", "msg_type": "stream", "session": session,
              "username": "ann", "date": "2025-01-01T00:00:00.000000Z", "version": "5.4"}
    return {"header": header, "msg_id": header["msg_id"], "msg_type": "stream",
            "parent_header": {"msg_id": f"{session}-request"}, "metadata": {},
            "content": {"name": "stdout", "text": f"line {i}: " + "x" * 60 + "\n"},
            "buffers": []}


async def run(path: Path, *, max_batch: int, messages: int, producers: int
              ) -> tuple[float, int]:
    """Messages per second, and commits used, for one fresh store file."""
    per = messages // producers
    async with SQLiteStore(sqlite_url(path), max_batch=max_batch) as store:

        async def produce(p: int) -> None:
            session = f"s{p}"
            for i in range(per):
                await store.append_messages([(session, message(session, i))])

        start = time.perf_counter()
        await asyncio.gather(*(produce(p) for p in range(producers)))
        elapsed = time.perf_counter() - start
        commits = store.stats.commits
    return per * producers / elapsed, commits


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=4000, help="messages per run")
    parser.add_argument("--producers", type=int, default=100, help="concurrent sessions")
    parser.add_argument("--repeat", type=int, default=5, help="runs per mode (median)")
    args = parser.parse_args()
    rates: dict[int, list[float]] = {MAX_BATCH: [], 1: []}
    commits: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="cellbus-bench-") as tmp:
        for r in range(args.repeat):
            for max_batch in rates:  # alternate modes so drift hits both alike
                rate, commits[max_batch] = await run(
                    Path(tmp) / f"run{r}-{max_batch}.db", max_batch=max_batch,
                    messages=args.messages, producers=args.producers)
                rates[max_batch].append(rate)
    batched, single = (statistics.median(rates[b]) for b in (MAX_BATCH, 1))
    n = args.messages // args.producers * args.producers
    print(f"{n} messages from {args.producers} concurrent producers, median of {args.repeat}")
    print(f"group commit (max_batch={MAX_BATCH}): {batched:10.0f} msg/s  "
          f"({commits[MAX_BATCH]} commits in the last run)")
    print(f"one commit per message (max_batch=1): {single:10.0f} msg/s  "
          f"({commits[1]} commits in the last run)")
    print(f"ratio: {batched / single:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())

"""A node's cost per message received as its replay window fills and turns over.

    .venv/bin/python bench/replay_window.py [--messages N] [--step K]

Each node's :class:`protocol.wire.Session` remembers the signatures of the last 65,536
messages it accepted. This times ``Session.deserialize`` of small signed messages in steps
of K, for N messages, with the window as it is (:mod:`protocol.recent`) and as it was
before (a plain dict evicted with ``del d[next(iter(d))]``, whose cost per eviction grew
with the evictions since the dict's last resize). Prints microseconds per message by step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol.wire import Session  # noqa: E402

KEY = b"bench" * 8


class DictWindow(Session):
    """The window before: a plain dict used first-in first-out."""

    def __init__(self) -> None:
        super().__init__(KEY)
        self._seen = {}  # type: ignore[assignment]

    def _remember(self, signature: bytes) -> None:
        self._seen[signature] = None
        if len(self._seen) > self.replay_history:
            del self._seen[next(iter(self._seen))]


def per_step(session: Session, messages: int, step: int) -> list[float]:
    """Microseconds per ``deserialize`` in each step of ``step`` messages."""
    sender = Session(KEY)
    out = []
    for _ in range(messages // step):
        batch = [sender.serialize(sender.msg("status", {"execution_state": "idle"}))
                 for _ in range(step)]
        start = time.perf_counter()
        for frames in batch:
            session.deserialize(frames)
        out.append((time.perf_counter() - start) / step * 1e6)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=400_000)
    p.add_argument("--step", type=int, default=50_000)
    args = p.parse_args()
    now = per_step(Session(KEY), args.messages, args.step)
    before = per_step(DictWindow(), args.messages, args.step)
    print("| messages received | now: us/message | before: us/message |")
    print("|---|---|---|")
    for i, (a, b) in enumerate(zip(now, before), 1):
        print(f"| {i * args.step:,} | {a:.1f} | {b:.1f} |")
    print(f"\nmedian: now {statistics.median(now):.1f} us, before "
          f"{statistics.median(before):.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())

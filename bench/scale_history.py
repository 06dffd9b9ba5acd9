"""A store with a history of N output messages, made through the Store API as the broker
would make it: closed sessions of 1,000 messages each (an execute_request's busy status,
stream lines, reply and idle), owned by other users' worksheets. The broker starts on it
afterwards, so what it must not scan is already there."""

from __future__ import annotations

import time
import uuid

from broker.store import CLOSED, SessionRecord, open_store
from protocol import Session

PER_SESSION = 1000
BATCH = 500


def _messages(bus: Session, session: str, n: int) -> list[tuple[str, dict]]:
    request = bus.msg("execute_request", {"code": "for i in range(998): print(i)"})
    out = [bus.msg("status", {"execution_state": "busy"}, parent=request)]
    out += [bus.msg("stream", {"name": "stdout", "text": f"{i}\n"}, parent=request)
            for i in range(n - 3)]
    out += [bus.msg("execute_reply", {"status": "ok", "execution_count": 1}, parent=request),
            bus.msg("status", {"execution_state": "idle"}, parent=request)]
    return [(session, m) for m in out[:n]]


async def fill_store(url: str, total: int) -> None:
    """Append ``total`` messages to the (new) store at ``url``."""
    bus = Session(key=b"bench-history")
    now = time.time() - 3600
    async with open_store(url) as store:
        left, k = total, 0
        while left > 0:
            n = min(PER_SESSION, left)
            session = uuid.uuid4().hex
            await store.put_session(SessionRecord(session, f"user{k % 50}", f"w{k}", None,
                                                  CLOSED, now, now))
            items = _messages(bus, session, n)
            for i in range(0, len(items), BATCH):
                await store.append_messages(items[i:i + BATCH])
            left, k = left - n, k + 1

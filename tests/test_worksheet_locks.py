"""The broker's worksheet locks (broker/locks.py): requests of one worksheet that change it
(an evaluate, a DELETE of its runs, an interact...) never run side by side, however many
other worksheets' requests come and go, which a client sending requests for ten thousand
made-up worksheet names (a DELETE of one is a cheap 404, and counts against no rate) decides.
"""

from __future__ import annotations

import asyncio

from broker.locks import WorksheetLocks

#: Other worksheets used meanwhile: past what the lock table once kept before forgetting.
OTHERS = 10_002


async def test_one_worksheets_requests_never_overlap_while_thousands_of_others_come_and_go(
        ) -> None:
    """A holds ann/ws, B waits for it. A lets go and, before B resumes, requests of 10,002
    other worksheets take and leave their locks (no await between: the event loop runs
    them in that order under load). C then asks for ann/ws: it must wait until B is done.
    Before, the table forgot every lock not held at that moment, B's among them (released,
    not yet taken again), and C got a fresh lock and ran beside B."""
    locks = WorksheetLocks()
    key = ("ann", "ws")
    inside: list[str] = []
    overlapped: list[tuple[str, ...]] = []
    b_inside, b_may_go = asyncio.Event(), asyncio.Event()

    async def enter(name: str) -> None:
        async with locks(key):
            if inside:
                overlapped.append((*inside, name))
            inside.append(name)
            if name == "B":
                b_inside.set()
                await b_may_go.wait()
            inside.remove(name)

    a = locks(key)
    await a.acquire()
    b = asyncio.create_task(enter("B"))
    for _ in range(3):
        await asyncio.sleep(0)  # B is waiting for the lock now
    assert not b.done() and not b_inside.is_set()
    a.release()
    for n in range(OTHERS):  # each request of another worksheet
        async with locks(("mallory", f"w{n}")):
            pass
    c = asyncio.create_task(enter("C"))
    await asyncio.wait_for(b_inside.wait(), 5)
    for _ in range(10):
        await asyncio.sleep(0)  # C had every chance to enter
    assert overlapped == [] and inside == ["B"], (overlapped, inside)
    b_may_go.set()
    await asyncio.wait_for(asyncio.gather(b, c), 5)
    assert overlapped == [] and inside == []


async def test_the_table_keeps_only_the_worksheets_in_use() -> None:
    """10,002 worksheets used one after another leave nothing in the table; one held stays
    while it is held, the same lock for every request of it."""
    locks = WorksheetLocks()
    for n in range(OTHERS):
        async with locks(("mallory", f"w{n}")):
            pass
    assert len(locks) == 0
    async with locks(("ann", "ws")):
        assert len(locks) == 1 and locks(("ann", "ws")).locked()
    assert len(locks) == 0

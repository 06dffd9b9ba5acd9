"""The two halves of exactly-once delivery on their own: the device's outbox (numbering,
go-back-N resends, backpressure) and the broker's receipts (each record stored once, in
order). tests/test_chaos.py and tests/test_disk_full.py show them across real crashes."""

from __future__ import annotations

import asyncio

import pytest

from broker.receipts import Receipts, Verdict
from device import outbox as outbox_module
from device.outbox import Outbox
from protocol.wire import Session

KEY = b"k" * 32


class Wire:
    """What the outbox wrote, decoded: (epoch, n, try) of each message, in order."""

    def __init__(self) -> None:
        self.session = Session(KEY)
        self.sent: list[tuple[str, int, int]] = []
        self.blocked = asyncio.Event()
        self.blocked.set()

    async def send(self, frames: list[bytes]) -> None:
        await self.blocked.wait()
        _, msg = self.session.deserialize(frames)  # a resend is no replay: fresh signature
        facts = msg["metadata"]["cellbus"]
        self.sent.append((facts["out"][0], facts["out"][1], facts.get("try", 1)))


def record(session: Session, text: str, parent: str = "p1") -> dict:
    return session.msg("stream", {"name": "stdout", "text": text},
                       parent={"msg_id": parent, "msg_type": "execute_request"})


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_records_go_out_in_order_and_leave_only_when_stored() -> None:
    wire = Wire()
    box = Outbox(wire.send, wire.session.serialize)
    writer = asyncio.create_task(box.run())
    for i in range(5):
        box.put(record(wire.session, f"{i}\n", parent=f"p{i % 2}"))
    await settle()
    assert [n for _, n, _ in wire.sent] == [1, 2, 3, 4, 5]
    assert box.parents() == {"p0", "p1"}
    box.ack(box.epoch, 3)
    assert len(box) == 2 and box.parents() == {"p1", "p0"}
    box.ack("another-epoch", 5)  # an ack for another process of this device: ignored
    assert len(box) == 2
    box.ack(box.epoch, True)  # garbage: ignored
    assert len(box) == 2
    box.ack(box.epoch, 5)
    assert len(box) == 0 and await box.flushed(0.1)
    writer.cancel()


async def test_a_gap_resends_everything_unacknowledged_once() -> None:
    wire = Wire()
    box = Outbox(wire.send, wire.session.serialize)
    writer = asyncio.create_task(box.run())
    for i in range(6):
        box.put(record(wire.session, f"{i}\n"))
    await settle()
    wire.sent.clear()
    box.ack(box.epoch, 2, resend=True)  # the broker stored 1-2, then saw a gap
    box.ack(box.epoch, 2, resend=True)  # the same gap seen again in its next batch
    await settle()
    assert wire.sent == [(box.epoch, n, 2) for n in (3, 4, 5, 6)]
    writer.cancel()


async def test_silence_resends_with_growing_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(outbox_module.time, "monotonic", lambda: now[0])
    wire = Wire()
    box = Outbox(wire.send, wire.session.serialize)
    writer = asyncio.create_task(box.run())
    box.put(record(wire.session, "x\n"))
    await settle()
    waits = []
    for _ in range(5):
        before = len(wire.sent)
        start = now[0]
        while len(wire.sent) == before:
            now[0] += 0.5
            box.check()
            await settle()
        waits.append(now[0] - start)
    assert waits == [2.0, 4.0, 8.0, 8.0, 8.0]
    box.ack(box.epoch, 1)
    box.check()
    assert len(box) == 0
    writer.cancel()


async def test_a_full_outbox_makes_room_wait_until_an_ack() -> None:
    wire = Wire()
    wire.blocked.clear()  # the broker is away: nothing is written
    box = Outbox(wire.send, wire.session.serialize, capacity=2000)
    writer = asyncio.create_task(box.run())
    while box.bytes < box.capacity:
        box.put(record(wire.session, "y" * 300))
    waiter = asyncio.create_task(box.room())
    await settle()
    assert not waiter.done()
    wire.blocked.set()
    await settle()
    box.ack(box.epoch, len(wire.sent))
    await asyncio.wait_for(waiter, 1)
    writer.cancel()


def test_receipts_store_each_record_once_in_order() -> None:
    receipts = Receipts({"d1": ("e1", 4)})
    facts = [{"out": ["e1", n]} for n in (3, 4, 5, 7, 6)]
    verdicts = [receipts.admit("d1", f) for f in facts]
    assert verdicts == [Verdict.DUPLICATE, Verdict.DUPLICATE, Verdict.NEW, Verdict.GAP,
                        Verdict.NEW]
    assert receipts.pending() == {"d1": ("e1", 6)}
    receipts.stored_batch()
    assert receipts.acks() == [("d1", {"epoch": "e1", "stored": 6, "resend": True})]
    assert receipts.acks() == []  # a new batch
    assert receipts.admit("d1", {"session": "s"}) is Verdict.UNNUMBERED
    assert receipts.admit("d1", {"out": ["e1", True]}) is Verdict.UNNUMBERED


def test_receipts_of_a_new_epoch_and_of_a_batch_not_stored() -> None:
    receipts = Receipts({"d1": ("old", 90)})
    assert receipts.admit("d1", {"out": ["new", 2]}) is Verdict.GAP  # 1 was lost
    assert receipts.pending() == {}
    receipts.stored_batch()
    assert receipts.acks() == [("d1", {"epoch": "new", "stored": 0, "resend": True})]
    assert receipts.admit("d1", {"out": ["new", 1]}) is Verdict.NEW
    receipts.abandon()  # the store failed: nothing of the batch holds, nothing is acked
    assert receipts.acks() == [] and receipts.current("d1") == ("new", 0)
    assert receipts.admit("d1", {"out": ["new", 1]}) is Verdict.NEW

"""The two halves of exactly-once delivery on their own: the device's outbox (numbering,
go-back-N resends, backpressure) and the broker's receipts (each record stored once, in
order). tests/test_chaos.py and tests/test_disk_full.py show them across real crashes."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest

from broker.receipts import Receipts, Verdict
from device import outbox as outbox_module
from device.outbox import Outbox
from protocol import records
from protocol.errors import ProtocolError
from protocol.wire import Session

KEY = b"k" * 32


class Wire:
    """What the outbox wrote, decoded: (epoch, n, try) of each record, in order, and how
    many records each bus message carried."""

    def __init__(self) -> None:
        self.session = Session(KEY)
        self.sent: list[tuple[str, int, int]] = []
        self.sends: list[int] = []
        self.blocked = asyncio.Event()
        self.blocked.set()

    async def send(self, frames: list[bytes]) -> None:
        await self.blocked.wait()
        _, msg = self.session.deserialize(frames)  # a resend is no replay: fresh signature
        inner = [msg]
        if msg["msg_type"] == "records":
            inner = list(records.unbundle(self.session, msg, self.rejected))
        self.sends.append(len(inner))
        for each in inner:
            facts = each["metadata"]["cellbus"]
            self.sent.append((facts["out"][0], facts["out"][1], facts.get("try", 1)))

    def rejected(self, e: ProtocolError) -> None:
        raise AssertionError(f"a record in a bundle was rejected: {e}")

    def bundling_outbox(self, **kwargs: Any) -> Outbox:
        return Outbox(self.send, self.session.serialize,
                      bundle=functools.partial(records.bundle, self.session), **kwargs)


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


async def test_a_burst_goes_out_as_one_message_and_a_resend_too() -> None:
    wire = Wire()
    box = wire.bundling_outbox()
    writer = asyncio.create_task(box.run())
    for i in range(5):  # a worker's burst: put before the writer runs
        box.put(record(wire.session, f"{i}\n"))
    await settle()
    assert wire.sends == [5]
    assert [n for _, n, _ in wire.sent] == [1, 2, 3, 4, 5]
    box.put(record(wire.session, "alone\n"))
    await settle()
    assert wire.sends == [5, 1]  # a record on its own goes as itself
    wire.sent.clear()
    box.ack(box.epoch, 2, resend=True)
    await settle()
    assert wire.sends[2:] == [4]
    assert wire.sent == [(box.epoch, n, 2) for n in (3, 4, 5, 6)]  # signed afresh
    writer.cancel()


async def test_a_bundle_stops_at_its_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "MAX_RECORDS", 3)
    wire = Wire()
    box = wire.bundling_outbox()
    writer = asyncio.create_task(box.run())
    for i in range(7):
        box.put(record(wire.session, f"{i}\n"))
    await settle()
    assert wire.sends == [3, 3, 1]
    assert [n for _, n, _ in wire.sent] == list(range(1, 8))
    writer.cancel()


def test_a_bundle_is_checked_record_by_record() -> None:
    """Each inner record is verified as if it came alone: a forged or replayed one is
    rejected and the rest still come out; a bundle whose counts lie is rejected whole."""
    sender, receiver = Session(KEY), Session(KEY)
    good = [sender.serialize(record(sender, f"{i}\n")) for i in range(3)]
    forged = Session(b"x" * 32).serialize(record(sender, "forged\n"))
    frames = records.bundle(sender, [good[0], forged, good[1], good[0], good[2]])
    _, msg = receiver.deserialize(frames)
    why: list[str] = []
    out = list(records.unbundle(receiver, msg, lambda e: why.append(e.reason)))
    assert [m["content"]["text"] for m in out] == ["0\n", "1\n", "2\n"]
    assert why == ["signature", "replay"]
    lying = sender.msg("records", {"frames": [5, 5]})
    lying["buffers"] = good[0][1:]
    _, msg = receiver.deserialize(sender.serialize(lying))
    assert list(records.unbundle(receiver, msg, lambda e: why.append(e.reason))) == []
    assert why[-1] == "frames"


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

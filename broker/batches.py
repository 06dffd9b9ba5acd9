"""Storing what devices sent, a batch at a time, and acknowledging it only once it is stored.

The broker's device loop reads up to a batch of records and hands their output here: it is
screened for quotas (output past one becomes a notice), stored with each device's receipt in
one group commit, published, and only then acknowledged to each device (``output_ack``), so
a device drops nothing from its outbox that the store does not hold (Titanic's discipline,
DESIGN.md's "delivery is acknowledged end to end"). A store that cannot write drops the
batch unacknowledged (the devices keep it and send it again) and the broker goes on; while it
fails, :attr:`Batches.failing` says since when (new work is refused meanwhile, and the
metrics say so).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from protocol import msgtypes as mt
from protocol.wire import Message, Session

from .output import Outputs
from .quotas import Quotas
from .receipts import Receipts
from .store import StoreError


class Batches:
    """Stores batches of device output with their receipts, then acknowledges them."""

    def __init__(self, *, wire: Session, outputs: Outputs, quotas: Quotas,
                 post: Callable[[str, Message], None], log: logging.Logger) -> None:
        self.wire, self.outputs, self.quotas, self.post, self.log = (
            wire, outputs, quotas, post, log)
        #: What of each device's outbox is stored (exactly once; loaded from the store).
        self.receipts = Receipts()
        #: Since when (monotonic) the store has refused writes, or None while it writes.
        self.failing: float | None = None

    async def store(self, outputs: list[tuple[str, Message]]) -> bool:
        """Store a batch read from the devices with their receipts, then acknowledge it to
        each device. If the store cannot write, the batch is dropped unacknowledged (the
        devices keep it and send it again) and the broker goes on: False."""
        receipts = self.receipts.pending()
        outputs = self.quotas.screen(outputs)  # output past a quota becomes a notice
        if outputs or receipts:
            try:
                await self.outputs.persist_and_publish(outputs, receipts,
                                                       size=self.quotas.output.kept_bytes)
            except StoreError as e:
                self.receipts.abandon()
                self.quotas.forget_screened()
                if self.failing is None:
                    self.failing = time.monotonic()
                    self.log.error("broker: the store cannot write (%s); devices keep their "
                                   "output until it can, new work is refused meanwhile", e)
                return False
        if self.failing is not None and (outputs or receipts):
            self.log.warning("broker: the store writes again, after %.0f s",
                             time.monotonic() - self.failing)
            self.failing = None
        self.receipts.stored_batch()
        for device, content in self.receipts.acks():  # one gone sends again when it is back
            self.post(device, self.wire.msg(mt.OUTPUT_ACK, content))
        return True

    def reported(self, device: str, confirmed: Any) -> bool:
        """A device's report says the newest record of its outbox a broker confirmed
        (``[epoch, n]``). Past this store's receipt of it, the store lost records it held
        (restored from an older copy, or its last commits lost): the device is asked for
        everything after the receipt, which tells it, and it numbers what it holds afresh
        (:mod:`device.outbox`); else every record it sends would come after a gap. Returns
        whether the store lacks records of it so (:meth:`broker.devices.DeviceWatch.joined`
        says why the cells it no longer runs ended)."""
        if not (isinstance(confirmed, list) and len(confirmed) == 2
                and isinstance(confirmed[0], str) and type(confirmed[1]) is int):
            return False  # a device of an older cellbus says nothing of it
        epoch, n = confirmed
        receipt = self.receipts.current(device)
        stored = receipt[1] if receipt is not None and receipt[0] == epoch else 0
        if n > stored:
            self.post(device, self.wire.msg(mt.OUTPUT_ACK, {
                "epoch": epoch, "stored": stored, "resend": True}))
        return n > stored

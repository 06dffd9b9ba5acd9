"""Which records of each device's outbox the broker has stored: the broker half of
exactly-once delivery (the device half, and the whole scheme, is :mod:`device.outbox`).

A device numbers its output records ``[epoch, n]``, n = 1, 2, 3, ... within one device
process (its epoch). The broker stores them in that order and each once: its *receipt* of a
device is ``(epoch, stored)``, the last record stored, written in the same transaction as
the records (``Store.append_and_update``), so that after a crash it is exactly as far as
the store. For a batch of records read from the devices, :meth:`Receipts.admit` says of each:

- ``NEW``: the next one; it is stored with the batch;
- ``DUPLICATE``: stored already (the device sent it again): dropped;
- ``GAP``: records before it never arrived (lost with a broker that died, or dropped while
  the store could not write): dropped, and the device is asked to send again from the
  first one missing.

After the batch is stored, every device heard from gets an ``output_ack`` with its receipt
(:meth:`Receipts.acks`); if the store failed, :meth:`Receipts.abandon` forgets the batch and
no ack goes out, so the devices keep everything and send it again.
"""

from __future__ import annotations

import enum
from typing import Any


class Verdict(enum.Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    GAP = "gap"
    UNNUMBERED = "unnumbered"  # no outbox number: a device of an older cellbus, or a test's


def numbered(facts: Any) -> tuple[str, int] | None:
    """The ``[epoch, n]`` a device put in ``metadata["cellbus"]["out"]``, if well formed."""
    out = facts.get("out") if isinstance(facts, dict) else None
    if (isinstance(out, list) and len(out) == 2 and isinstance(out[0], str)
            and type(out[1]) is int and out[1] > 0):
        return out[0], out[1]
    return None


class Receipts:
    """Every device's receipt, and the batch being stored; see the module docstring."""

    def __init__(self, stored: dict[str, tuple[str, int]] | None = None) -> None:
        self.stored: dict[str, tuple[str, int]] = dict(stored or {})
        self._batch: dict[str, tuple[str, int]] = {}  # receipts as the batch leaves them
        self._heard: set[str] = set()  # devices that sent numbered records in this batch
        self._gaps: set[str] = set()  # devices whose records came after a gap

    def current(self, device: str) -> tuple[str, int] | None:
        return self._batch.get(device) or self.stored.get(device)

    def admit(self, device: str, facts: Any) -> Verdict:
        """Judge one record of ``device`` (its ``metadata["cellbus"]``) in this batch."""
        key = numbered(facts)
        if key is None:
            return Verdict.UNNUMBERED
        epoch, n = key
        self._heard.add(device)
        receipt = self.current(device)
        last = receipt[1] if receipt is not None and receipt[0] == epoch else 0
        if n <= last:
            return Verdict.DUPLICATE
        if n > last + 1:
            self._gaps.add(device)
            if receipt is None or receipt[0] != epoch:
                self._batch[device] = (epoch, 0)  # a new epoch: nothing of it stored yet
            return Verdict.GAP
        self._batch[device] = (epoch, n)
        return Verdict.NEW

    def pending(self) -> dict[str, tuple[str, int]]:
        """The receipts to store with this batch."""
        return {d: r for d, r in self._batch.items() if r[1] > 0}

    def stored_batch(self) -> None:
        """The batch is stored: its receipts hold."""
        self.stored.update(self._batch)
        self._batch.clear()

    def abandon(self) -> None:
        """The batch could not be stored: forget it; nothing is acknowledged."""
        self._batch.clear()
        self._heard.clear()
        self._gaps.clear()

    def acks(self) -> list[tuple[str, dict[str, Any]]]:
        """``(device, output_ack content)`` for every device heard in the batch; then a new
        batch begins."""
        out = []
        for device in sorted(self._heard):
            epoch, stored = self.stored.get(device, ("", 0))
            out.append((device, {"epoch": epoch, "stored": stored,
                                 "resend": device in self._gaps}))
        self._heard.clear()
        self._gaps.clear()
        return out

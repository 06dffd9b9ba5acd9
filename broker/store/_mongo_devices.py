"""The ``devices``, ``receipts`` and ``deliveries`` collections of the MongoDB store, as a
mixin of :class:`~broker.store.mongodb.MongoStore`: what the broker last heard of each
device, the receipts of each device's output (:mod:`broker.receipts`), and each Jupyter
client's delivery position (:mod:`broker.jupyter`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from ._mongo_docs import _blob, _device
from ._mongo_tx import _put_receipts
from .base import Receipts
from .records import DeviceRecord


class MongoDevices:
    _open_db: Callable[[], Any]
    _errors: Callable[[str], contextlib.AbstractContextManager[None]]

    # -- devices ----------------------------------------------------------------------------

    async def put_device(self, rec: DeviceRecord) -> None:
        db = self._open_db()
        values = {"device": rec.device, "capacity": rec.capacity, "load": rec.load,
                  "last_heartbeat": rec.last_heartbeat,
                  "info": _blob(rec.info, f"info of device {rec.device!r}")}
        with self._errors(f"store device {rec.device!r}"):
            await db.devices.update_one({"device": rec.device}, {"$set": values}, upsert=True)

    async def devices(self) -> list[DeviceRecord]:
        db = self._open_db()
        with self._errors("list devices"):
            docs = await db.devices.find().sort("device", 1).to_list()
        return [_device(doc) for doc in docs]

    async def remove_device(self, device: str) -> bool:
        db = self._open_db()
        with self._errors(f"remove device {device!r}"):
            return (await db.devices.delete_one({"device": device})).deleted_count > 0

    # -- receipts ---------------------------------------------------------------------------

    async def put_receipts(self, receipts: Receipts) -> None:
        db = self._open_db()
        with self._errors("store device receipts"):
            await _put_receipts(db, receipts, None)

    async def receipts(self) -> dict[str, tuple[str, int]]:
        db = self._open_db()
        with self._errors("read device receipts"):
            docs = await db.receipts.find().to_list()
        return {str(d["device"]): (str(d["epoch"]), int(d["stored"])) for d in docs}

    # -- deliveries -------------------------------------------------------------------------

    async def put_delivery(self, user: str, worksheet: str, client: str, session: str,
                           seq: int) -> None:
        key = {"user": user, "worksheet": worksheet, "client": client}
        with self._errors(f"store a delivery position of {user}/{worksheet}"):
            await self._open_db().deliveries.update_one(
                key, {"$set": {"session": session, "seq": seq}}, upsert=True)

    async def delivery(self, user: str, worksheet: str, client: str) -> tuple[str, int] | None:
        key = {"user": user, "worksheet": worksheet, "client": client}
        with self._errors(f"read a delivery position of {user}/{worksheet}"):
            doc = await self._open_db().deliveries.find_one(key)
        return None if doc is None else (str(doc["session"]), int(doc["seq"]))

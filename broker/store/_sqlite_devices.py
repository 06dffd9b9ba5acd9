"""The ``devices``, ``receipts`` and ``deliveries`` tables of the SQLite store, as a mixin of
:class:`~broker.store.sqlite.SQLiteStore`: what the broker last heard of each device, the
receipts of each device's output (:mod:`broker.receipts`), and each Jupyter client's
delivery position (:mod:`broker.jupyter`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from ._rows import pack
from ._sqlite_rows import _DEVICE_COLS, _device, _receipts_op
from .base import Receipts
from .records import DeviceRecord

Op = Callable[[sqlite3.Connection], Any]


class SQLiteDevices:
    _write: Callable[[Op], Awaitable[Any]]
    _read: Callable[[Op], Awaitable[Any]]

    # -- devices ----------------------------------------------------------------------------

    async def put_device(self, rec: DeviceRecord) -> None:
        values = (rec.device, rec.capacity, rec.load, rec.last_heartbeat, pack(rec.info))

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO devices ({_DEVICE_COLS}) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (device) DO UPDATE SET capacity = excluded.capacity, "
                "load = excluded.load, last_heartbeat = excluded.last_heartbeat, "
                "info = excluded.info", values)

        await self._write(op)

    async def devices(self) -> list[DeviceRecord]:
        return await self._read(lambda conn: [_device(r) for r in conn.execute(
            f"SELECT {_DEVICE_COLS} FROM devices ORDER BY device")])

    async def remove_device(self, device: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM devices WHERE device = ?", (device,)).rowcount > 0

        return await self._write(op)

    # -- receipts ---------------------------------------------------------------------------

    async def put_receipts(self, receipts: Receipts) -> None:
        await self._write(_receipts_op(receipts))

    async def receipts(self) -> dict[str, tuple[str, int]]:
        return await self._read(lambda conn: {device: (epoch, stored) for device, epoch, stored
                                              in conn.execute("SELECT * FROM receipts")})

    # -- deliveries -------------------------------------------------------------------------

    async def put_delivery(self, user: str, worksheet: str, client: str, session: str,
                           seq: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO deliveries (user, worksheet, client, session, seq) "
                         "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user, worksheet, client) DO "
                         "UPDATE SET session = excluded.session, seq = excluded.seq",
                         (user, worksheet, client, session, seq))

        await self._write(op)

    async def delivery(self, user: str, worksheet: str, client: str) -> tuple[str, int] | None:
        row = await self._read(lambda conn: conn.execute(
            "SELECT session, seq FROM deliveries WHERE user = ? AND worksheet = ? AND "
            "client = ?", (user, worksheet, client)).fetchone())
        return None if row is None else (str(row[0]), int(row[1]))

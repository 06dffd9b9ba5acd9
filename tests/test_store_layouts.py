"""The store's worksheet layouts (broker/layouts.py), against every backend of the contract
suite (its ``store`` and ``store_url`` fixtures): kept per worksheet, replaced whole, read
back with any keys, and kept across a reopen (a broker restart)."""

from __future__ import annotations

import pytest

from broker.store import Store, open_store
from test_store_contract import store, store_url  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(20)


async def test_a_layout_is_kept_per_worksheet_and_replaced_whole(
        store: Store, store_url: str) -> None:  # noqa: F811
    cells = [{"id": "1", "type": "code", "code": "x = 1"},
             {"id": "4", "type": "markdown", "code": "# $title {a.b}\n<b>x</b>"}]
    assert await store.get_layout("ann", "ws") is None
    await store.put_layout("ann", "ws", cells)
    await store.put_layout("ann", "other", [])
    assert await store.get_layout("ann", "ws") == cells
    assert await store.get_layout("ann", "other") == []
    assert await store.get_layout("bob", "ws") is None
    await store.put_layout("ann", "ws", cells[::-1])
    assert await store.get_layout("ann", "ws") == cells[::-1]
    async with open_store(store_url) as again:
        assert await again.get_layout("ann", "ws") == cells[::-1]

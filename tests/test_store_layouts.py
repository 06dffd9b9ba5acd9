"""The store's worksheet layouts (broker/layouts.py), against every backend of the contract
suite (its ``store`` and ``store_url`` fixtures): kept per worksheet, replaced whole, read
back with any keys, and kept across a reopen (a broker restart); and the cells of a
worksheet without one (broker/notebook.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from broker.store import SessionRecord, Store, open_store
from test_store_contract import execute, interact, store, store_url  # noqa: F401 (fixtures)

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


async def test_layouts_are_counted_per_user_and_deleted_one_by_one(store: Store) -> None:
    """Tests what the broker's --user-layouts quota reads (broker/layouts.py): the worksheets
    of a user with a layout, not another user's, replacing one counts once, and deleting one
    frees its place (True once, then False: nothing is left of it)."""
    cells = [{"id": "1", "type": "code", "code": "x = 1"}]
    assert await store.count_layouts("ann") == 0
    for worksheet in ("a", "b", "c"):
        await store.put_layout("ann", worksheet, cells)
    await store.put_layout("ann", "b", cells * 2)
    await store.put_layout("bob", "a", cells)
    await store.put_layout("ann.b", "a", cells)  # a name another one begins with
    assert await store.count_layouts("ann") == 3
    assert await store.count_layouts("bob") == 1
    assert await store.delete_layout("ann", "b") is True
    assert await store.delete_layout("ann", "b") is False
    assert await store.delete_layout("ann", "nothere") is False
    assert await store.get_layout("ann", "b") is None
    assert await store.get_layout("bob", "a") == cells
    assert await store.count_layouts("ann") == 2
    assert await store.count_layouts("bob") == 1


async def test_worksheet_cells_are_those_that_ran(store: Store) -> None:
    """Tests that worksheet_cells names the cells of the worksheet with an execute_request,
    in every session of it (a restart's too), and none of another worksheet or user, nor a
    cell with only an interact_request."""
    assert await store.worksheet_cells("ann", "ws") == set()
    for rec, req in ((SessionRecord("s1", "ann", "ws", None, "closed", 1.0, 1.0), execute("2")),
                     (SessionRecord("s2", "ann", "ws", None, "open", 2.0, 2.0),
                      execute("10", session="s2")),
                     (SessionRecord("s3", "ann", "ws2", None, "open", 3.0, 3.0),
                      execute("7", session="s3", worksheet="ws2")),
                     (SessionRecord("s4", "bob", "ws", None, "open", 4.0, 4.0),
                      execute("8", session="s4", user="bob"))):
        await store.add_session_request(rec, req)
    await store.add_request(execute("2", session="s2"))  # ran again after the restart
    await store.add_request(replace(interact("f", 1, session="s2"), cell_id="9"))
    assert await store.worksheet_cells("ann", "ws") == {"2", "10"}

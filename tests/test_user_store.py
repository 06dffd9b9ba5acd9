"""``bin/cellbus user`` against a store no broker ever used (a SQLite file, a MongoDB
database): a typo in ``--store``, or the default store of another Unix user than the
broker's. Before, ``list`` and ``remove`` made an empty store there and answered "0 users",
and ``add`` put the user in it without a word, so the token never worked and nothing said
why."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from access_util import cellbus_user
from broker.store import sqlite_url


def test_list_and_remove_make_no_store_and_say_none_is_there(tmp_path: Path) -> None:
    """Tests that `user list` and `user remove` on a missing SQLite file fail, naming it and
    where the broker's store is said, and leave no file behind."""
    typo = tmp_path / "celbus.db"
    for args in (("list",), ("remove", "alice")):
        out = cellbus_user(*args, store=sqlite_url(typo))
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert f"no store at {typo}" in out.stderr, out.stderr
        assert "broker store: SQLite file" in out.stderr, out.stderr
    assert list(tmp_path.iterdir()) == []


def test_add_to_a_new_store_says_it_made_one(tmp_path: Path) -> None:
    """Tests that `user add` into a file that did not exist still adds the user (users may
    be added before the broker's first start) but says on stderr that it made a new store
    no broker has used, and that adding to an existing store says nothing of the kind."""
    store = sqlite_url(tmp_path / "cellbus.db")
    first = cellbus_user("add", "alice", store=store)
    assert first.returncode == 0, first.stderr
    assert f"made a new store at {tmp_path / 'cellbus.db'}" in first.stderr, first.stderr
    assert "no broker has used it yet" in first.stderr
    one = cellbus_user("list", store=store)  # it said "1 users in"
    assert one.returncode == 0 and one.stdout.startswith(f"1 user in {store}\n"), one.stdout
    again = cellbus_user("add", "bob", store=store)
    assert again.returncode == 0 and "new store" not in again.stderr, again.stderr
    listing = cellbus_user("list", store=store)
    assert listing.returncode == 0 and "alice" in listing.stdout and "bob" in listing.stdout


@pytest.mark.mongodb
def test_a_mongodb_database_no_broker_used_is_named_like_a_missing_file(
        mongodb_database: str) -> None:
    """Tests that `user list` and `user remove` on a MongoDB database no broker has used (a
    typo in the URL's database name) fail, naming the database, the server's databases that
    hold a cellbus store, and where the broker's store is said, and make no database; that
    `user add` there adds the user but says it made a new store; and that the store a broker
    has opened draws no such words. Before, all of it went through silently ("0 users")."""
    import asyncio

    from broker.store import open_store
    from mongodb_server import drop_database

    async def open_as_a_broker() -> None:
        async with open_store(mongodb_database):
            pass
    asyncio.run(open_as_a_broker())
    parts = urlsplit(mongodb_database)
    real = parts.path.lstrip("/")
    typo = urlunsplit(parts._replace(path=f"/{real}x"))
    try:
        for args in (("list",), ("remove", "alice")):
            out = cellbus_user(*args, store=typo)
            assert out.returncode == 2, (args, out.stdout, out.stderr)
            assert f"no store in database {real + 'x'!r}" in out.stderr, out.stderr
            assert real in out.stderr.split("databases with a cellbus store")[1], out.stderr
            assert "broker store: " in out.stderr, out.stderr
        first = cellbus_user("add", "alice", store=typo)
        assert first.returncode == 0, first.stderr
        assert f"made a new store in database {real + 'x'!r}" in first.stderr, first.stderr
        assert "no broker has used it yet" in first.stderr
        for args in (("add", "bob"), ("list",)):
            out = cellbus_user(*args, store=mongodb_database)
            assert out.returncode == 0, (args, out.stderr)
            assert "new store" not in out.stderr and "no store" not in out.stderr, out.stderr
    finally:
        drop_database(typo)


@pytest.mark.parametrize("url", ["sqlite:cellbus.db", "sqlite:./data/cellbus.db"])
def test_a_relative_sqlite_url_is_refused_naming_the_absolute_form(
        url: str, tmp_path: Path) -> None:
    """Tests that a SQLite URL with a relative path (no // after sqlite:) is refused, by
    `user` and by the broker, with the absolute URL of the file it may mean; before, it was
    taken as a file at the root of the file system (/cellbus.db), which `user` then said
    was missing and a broker (as root) would have made."""
    from broker.store._sqlite_file import sqlite_path
    from broker.store.errors import UnknownStore

    with pytest.raises(UnknownStore, match="relative path"):
        sqlite_path(url)
    out = cellbus_user("list", store=url)
    assert out.returncode == 2 and "relative path" in out.stderr, out.stderr
    assert "sqlite:////" not in out.stderr and "sqlite:///" in out.stderr, out.stderr

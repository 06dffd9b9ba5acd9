"""broker.store._rows: what both store backends share lives in the store package, and
neither backend imports the other's modules."""

from __future__ import annotations

import ast
import datetime
from pathlib import Path

import pytest

from broker.store import StoreError
from broker.store._rows import check_limit, header_facts, pack, unpack

STORE = Path(__file__).resolve().parent.parent / "broker" / "store"


def imported_modules(path: Path) -> set[str]:
    """The modules a file imports from within the store package (``.sqlite`` -> "sqlite")."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module)
            else:
                found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize(("backend", "other"), [("mongo", "sqlite"), ("sqlite", "mongo")])
def test_no_backend_imports_the_other(backend: str, other: str) -> None:
    """Shared helpers belong to the store package: a backend's modules import the other
    backend's (``sqlite.py``, ``_sqlite_*``; ``mongodb.py``, ``_mongo_*``) never."""
    files = [p for p in STORE.glob("*.py") if p.stem.lstrip("_").startswith(backend)]
    assert files, f"no {backend} modules found in {STORE}"
    for path in files:
        wrong = sorted(m for m in imported_modules(path) if m.lstrip("_").startswith(other))
        assert not wrong, f"{path.name} imports {wrong} of the {other} backend"


def test_pack_round_trips_bytes_keys_and_dates() -> None:
    value = {"buffers": [b"\x00\xff"], "a.b": {"$set": 1}, 3: "int key",
             "when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)}
    assert unpack(pack(value)) == value


def test_pack_refuses_what_msgpack_cannot_carry_with_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot store set"):
        pack({1, 2})


def test_header_facts() -> None:
    """The parent and type a store indexes; the top-level msg_type if the header lacks one,
    and None for anything that is not a string."""
    msg = {"header": {"msg_type": "stream"}, "parent_header": {"msg_id": "p1"}}
    assert header_facts(msg) == ("p1", "stream")
    assert header_facts({"msg_type": "status", "parent_header": {}}) == (None, "status")
    assert header_facts({"header": "junk", "parent_header": {"msg_id": 5}}) == (None, None)


def test_check_limit() -> None:
    check_limit(None)
    check_limit(0)
    with pytest.raises(ValueError, match="limit must be None or >= 0, not -1"):
        check_limit(-1)

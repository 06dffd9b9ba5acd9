"""MongoDB-only behaviour of the store that needs no server: URLs, defaults, failing fast.

The backend's behaviour against a server is the contract suite's job
(``CELLBUS_TEST_MONGODB_URL=... bin/test tests/test_store_contract.py``); nothing here stands
in for it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from broker.store import (NEEDS_WORK, WORKING, StoreClosed, StoreError, UnknownStore,
                          open_store)
from broker.store._mongo_url import client_options, database_name, public_url
from broker.store.mongodb import MongoStore

from harness import ROOT, free_port
from mongodb_server import ENV_URL
from test_store_contract import execute, jmsg

pytestmark = pytest.mark.timeout(20)


@pytest.mark.parametrize("url", [
    "mongodb://db.example/cb",
    "mongodb+srv://cluster0.example.net/cb?retryWrites=true",
    "MONGODB://ann:s3cret@h1:27017,h2:27018/cb?replicaSet=rs0",
])
def test_open_store_picks_mongodb(url: str) -> None:
    """Tests that open_store gives a MongoStore, not yet connected, for mongodb URLs."""
    store = open_store(url)
    assert isinstance(store, MongoStore) and store.database == "cb"
    assert "s3cret" not in store.describe() and "s3cret" not in repr(store)
    assert "ann" not in store.describe()


@pytest.mark.parametrize("url,name", [
    ("mongodb://h", "cellbus"), ("mongodb://h/", "cellbus"),
    ("mongodb://h/?replicaSet=rs0", "cellbus"), ("mongodb://u:p@h1,h2:27018/app?w=1", "app"),
    ("mongodb+srv://c.example.net/prod_cellbus", "prod_cellbus"),
    ("mongodb://h/caf%C3%A9", "café"),
])
def test_database_name(url: str, name: str) -> None:
    """Tests that the database comes from the URL's path, else is "cellbus"."""
    assert database_name(url) == name


@pytest.mark.parametrize("bad", ["mongodb://h/a.b", "mongodb://h/a%20b", "mongodb://h/a$b",
                                 "mongodb://h/" + "x" * 64])
def test_bad_database_name(bad: str) -> None:
    """Tests that a database name MongoDB would refuse is refused up front, by name."""
    with pytest.raises(UnknownStore, match="not a MongoDB database name"):
        open_store(bad)


@pytest.mark.parametrize("url,concern", [
    ("mongodb://h/db?replicaSet=rs0", {"w": "majority"}),
    ("mongodb://h/db?REPLICASET=rs0&appName=x", {"w": "majority"}),
    ("mongodb+srv://c.example.net/db", {"w": "majority"}),
    ("mongodb://h/db", {"journal": True}),
    ("mongodb://h/db?replicaSet=rs0&w=1", {}),
    ("mongodb://h/db?replicaSet=rs0&journal=false", {}),
    ("mongodb://h/db?w=2&wtimeoutMS=500", {}),
])
def test_write_concern_defaults(url: str, concern: dict[str, object]) -> None:
    """Tests the write concern cellbus adds: majority on a replica set, journal on one
    server, nothing when the URL sets its own."""
    options = client_options(url)
    assert {k: v for k, v in options.items() if k != "appname"} == concern
    assert ("appname" in options) == ("appname=" not in url.lower())


@pytest.mark.parametrize("url,document", [
    ("mongodb://127.0.0.1:1/db?replicaSet=rs0", {"w": "majority"}),
    ("mongodb://127.0.0.1:1/db", {"j": True}),
    ("mongodb://127.0.0.1:1/db?replicaSet=rs0&w=1&journal=true", {"w": 1, "j": True}),
])
async def test_client_write_concern(url: str, document: dict[str, object]) -> None:
    """Tests the write concern pymongo's client really ends up with (it does not connect)."""
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url, **client_options(url))
    try:
        assert client.write_concern.document == document
    finally:
        await client.close()


def test_public_url_hides_secrets() -> None:
    """Tests that log lines and errors never show a password or secret option."""
    url = ("mongodb://ann:s3cret@h1:27017,h2/db?replicaSet=rs0"
           "&tlsCertificateKeyFilePassword=hush&authMechanismProperties=AWS_SESSION_TOKEN:tok")
    shown = public_url(url)
    assert shown.startswith("mongodb://h1:27017,h2/db?replicaSet=rs0&")
    for secret in ("ann", "s3cret", "hush", "tok"):
        assert secret not in shown.replace("TOKEN", "")


# pymongo 4.20 can leave unclosed the socket of a connect that client.close() cancelled (its
# PYTHON-5867): the driver's ResourceWarning, not the store's; dropped within this test.
@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
async def test_unreachable_server_fails_fast() -> None:
    """Tests that open() on a closed port raises StoreError naming the URL, within the
    URL's serverSelectionTimeoutMS, and leaves the store closed."""
    port = free_port()  # bound and released: nothing listens there
    url = f"mongodb://ann:s3cret@127.0.0.1:{port}/cb?serverSelectionTimeoutMS=300"
    store = open_store(url)
    began = time.monotonic()
    with pytest.raises(StoreError) as e:
        await asyncio.wait_for(store.open(), 10)
    assert time.monotonic() - began < 5
    text = str(e.value)
    del e  # its traceback holds pymongo's topology, and so that socket: drop it here
    gc.collect()
    assert f"mongodb://127.0.0.1:{port}/cb" in text and "s3cret" not in text
    assert "cannot open" in text
    with pytest.raises(StoreClosed):
        await store.get_request("x")
    await store.close()


async def test_never_opened_store_refuses() -> None:
    """Tests that every call on a MongoStore that was never opened raises StoreClosed."""
    store = open_store("mongodb://127.0.0.1:1/cb")
    for call in (store.add_request(execute()), store.get_request("x"), store.last_seq("s1"),
                 store.append_messages([("s1", jmsg("stream"))]), store.devices(),
                 store.requests("needs_work"), store.remove_device("d")):
        with pytest.raises(StoreClosed, match="closed"):
            await call
    await store.close()  # closing a store never opened is a no-op


def test_without_pymongo_says_install_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that without pymongo, open_store says to install the mongodb extra."""
    monkeypatch.setitem(sys.modules, "pymongo", None)  # import pymongo -> ImportError
    monkeypatch.delitem(sys.modules, "broker.store.mongodb", raising=False)
    with pytest.raises(UnknownStore, match=r"cellbus\[mongodb\]") as e:
        open_store("mongodb://ann:s3cret@db.example/cb")
    assert "s3cret" not in str(e.value) and "ann:***@db.example" in str(e.value)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("ci,rc,counts", [("", 0, "0 passed, 0 failed, 1 skipped"),
                                          ("true", 1, "0 passed, 1 failed, 0 skipped")])
def test_without_secantusdb_the_run_says_so(tmp_path: Path, ci: str, rc: int,
                                            counts: str) -> None:
    """Tests that where SecantusDB cannot be had (bin/test could not install it: offline), a
    MongoDB test is skipped saying why, or fails in CI, and the run's summary says they did
    not run."""
    env = {k: v for k, v in os.environ.items() if k not in (ENV_URL, "CI")}
    env |= {"CELLBUS_SECANTUS": str(tmp_path / "nowhere" / "secantusd-py"), "CI": ci}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
         "tests/test_store_contract.py::test_add_and_get_request[mongodb]"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=80)
    assert run.returncode == rc, run.stdout + run.stderr
    assert "SecantusDB is not installed" in run.stdout
    assert f"MongoDB store tests DID NOT RUN ({counts}): SecantusDB is not" in run.stdout


# A broker killed inside an append transaction (tests/test_chain_mongodb.py hits this at
# random): the transaction takes the seq of s1, then the process is SIGKILLed before it commits.
KILLED_MID_APPEND = """
import asyncio, os, signal, sys
from broker.store import open_store
from broker.store._mongo_append import Row

async def main():
    store = open_store(sys.argv[1])
    await store.open()
    appender = store._appender
    session = appender._session
    await session.start_transaction()
    await appender._insert([Row("s1", None, "stream", 0.0, b"\\x80")], session)
    print("in transaction", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


@pytest.mark.mongodb
@pytest.mark.timeout(60)
async def test_transaction_of_a_killed_broker_is_ended_by_the_next(
        mongodb_database: str) -> None:
    """Tests that a broker SIGKILLed inside an append transaction does not stall the broker
    that replaces it on this host until the server reaps the transaction (60 s): the new one
    ends it on open, appends at once, and the killed transaction's seq was never taken."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED_MID_APPEND, mongodb_database, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert out == b"in transaction\n" and proc.returncode == -9
    async with open_store(mongodb_database) as store:
        seqs = await asyncio.wait_for(store.append_messages([("s1", jmsg("stream"))]), 10)
        assert seqs == [1]
        assert [seq for seq, _ in await store.messages("s1")] == [1]


@pytest.mark.mongodb
async def test_output_status_and_receipts_commit_together(mongodb_database: str) -> None:
    """Tests that on a replica set append_and_update stores all or nothing: when its last
    write (a receipt) fails, neither the messages nor the status change are stored, so a
    device's resent records are never stored twice."""
    async with open_store(mongodb_database) as store:
        req = await store.add_request(execute())
        with pytest.raises(StoreError):
            await store.append_and_update([("s1", jmsg("status", parent=req.msg_id))],
                                          [(req.msg_id, WORKING, None)],
                                          {"d1": (object(), 1)})  # type: ignore[dict-item]
        assert await store.messages("s1") == [] and await store.last_seq("s1") == 0
        got = await store.get_request(req.msg_id)
        assert got is not None and got.status == NEEDS_WORK
        assert await store.receipts() == {}
        seqs, updated = await store.append_and_update(
            [("s1", jmsg("status", parent=req.msg_id))], [(req.msg_id, WORKING, None)],
            {"d1": ("e1", 1)})
        assert seqs == [1] and updated[0] is not None and updated[0].status == WORKING
        assert await store.receipts() == {"d1": ("e1", 1)}

"""One broker per MongoDB database (broker/store/_mongo_lease.py), as per SQLite file.

Two brokers on one database each took the other's running cells for orphans of a broker
that restarted: the second, started beside a running one, ended the first's running cell
with ``DeviceLost`` within 7 s, and through the first's gateway that cell stayed "working"
for good though its output was whole. Now the second stops at start in one line naming the
first; a broker killed leaves a lease its successor takes over; a holder whose lease was
taken while it was away stops. Real SecantusDB replica set, real broker processes.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import uuid
from pathlib import Path

import pytest

from broker.store import StoreClaimed, open_store
from harness import Chain, NodeProcess
from test_failures import wait_output
from test_store_owner import second_broker

pytestmark = [pytest.mark.mongodb, pytest.mark.timeout(120)]

CODE = "import time\nprint('start', flush=True)\ntime.sleep(6)\nprint('end')"


@pytest.fixture
def mongo_chain(key_file: Path, mongodb_database: str, nodes: list[NodeProcess]) -> Chain:
    return Chain(key_file, mongodb_database, nodes)


def test_a_second_broker_on_a_running_brokers_database_stops_in_one_line(
        mongo_chain: Chain, nodes: list[NodeProcess]) -> None:
    """Tests that a broker started on the database of a running broker exits with status 2
    and one line naming the first broker's pid and --store, while the first broker's running
    cell ends done with all its output."""
    chain = mongo_chain
    first = chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    assert chain.evaluate("u/ws/1", CODE)[0] == 202
    wait_output(chain, "u/ws/1", "start")
    second = second_broker(chain, nodes)
    assert second.proc.wait(30) == 2, second.log
    said = [line for line in second.log.splitlines() if "in use by" in line]
    assert len(said) == 1 and f"pid {first.proc.pid} " in said[0] and "--store" in said[0], \
        second.log
    wait_output(chain, "u/ws/1", "start\nend\n")
    status, doc = chain.update("u/ws/1")
    assert status == 200 and doc["status"] == "done", doc
    assert "DeviceLost" not in first.log


def test_a_killed_brokers_successor_takes_its_database_over(
        mongo_chain: Chain, nodes: list[NodeProcess]) -> None:
    """Tests that a broker killed with SIGKILL (its lease left behind) does not keep its
    successor on the same host out: the lease of a process that is gone is taken at once."""
    chain = mongo_chain
    first = chain.start_broker()
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    chain.start_broker()  # waits for "broker started"


async def test_a_lease_stood_still_is_taken_and_its_holder_told(mongodb_database: str) -> None:
    """Tests the lease between two stores of one database in this process: a claim on a
    lease that beats is refused naming its holder; once the beats stop (a broker frozen, or
    cut off from the database) the next claim takes it over, and the old holder's next
    renewal says it no longer holds it, so it stops."""
    a, b = open_store(mongodb_database), open_store(mongodb_database)
    await a.open()
    await b.open()
    try:
        holder = {"host": "elsewhere.example", "pid": os.getpid(), "since": "now"}
        owner_a, owner_b = uuid.uuid4().hex, uuid.uuid4().hex
        await a.claim({**holder, "owner": owner_a})

        async def beats() -> None:
            while True:
                assert await a.keep_claim(owner_a)
                await asyncio.sleep(0.2)

        beating = asyncio.create_task(beats())
        with pytest.raises(StoreClaimed, match=re.escape(
                f"the broker of pid {os.getpid()} on elsewhere.example")):
            await b.claim({**holder, "owner": owner_b})  # watches the beat for 4 s
        beating.cancel()
        await b.claim({**holder, "owner": owner_b})  # the beat stood still: taken over
        assert not await a.keep_claim(owner_a)
        assert await b.keep_claim(owner_b)
        await a.release_claim(owner_a)  # not its own any more: nothing happens
        assert await b.keep_claim(owner_b)
        await b.release_claim(owner_b)
        await a.claim({**holder, "owner": owner_a})  # a lease given up is free at once
    finally:
        await a.close()
        await b.close()

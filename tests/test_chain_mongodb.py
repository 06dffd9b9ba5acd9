"""The whole chain with the broker on the MongoDB store, in both server modes: a replica set
(seqs committed in transactions) and a standalone server (no transactions).

A few of the chain's tests, kept small for CI's time: seed 000 over HTTP and its replay over
a WebSocket, an interact, and broker SIGKILLs with the exactly-once check. The server is
$CELLBUS_TEST_MONGODB_URL's, else SecantusDB, a MongoDB-compatible server (not MongoDB) the
tests start (tests/mongodb_server.py).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from harness import Chain, NodeProcess, replayed_seqs
from mongodb_server import MODES
from test_chain_interact import SEED, interact_block, post_interact, text_of, wait_interact_text
from test_chaos import crash_broker_while_streaming

pytestmark = [pytest.mark.mongodb, pytest.mark.parametrize("mongodb_mode", MODES)]
#: What the broker's start-up line says of each mode (MongoStore.describe).
SEQS = {"replset": "seqs in transactions", "standalone": "no transactions (standalone server)"}


@pytest.fixture
def mongo_chain(key_file: Path, mongodb_database: str, nodes: list[NodeProcess]) -> Chain:
    """A chain (not started) whose broker keeps its store in a fresh MongoDB database (its
    nodes are stopped before the database is dropped)."""
    return Chain(key_file, mongodb_database, nodes)


def start(chain: Chain, mode: str) -> None:
    """Start broker, device and gateway; check the broker is on MongoDB in ``mode``."""
    broker = chain.start_broker()
    broker.wait_for_log(rf"broker store: MongoDB .*{re.escape(SEQS[mode])}")
    chain.start_device()
    chain.start_gateway()


def test_seed_walk_through_and_websocket_replay(mongo_chain: Chain, mongodb_mode: str) -> None:
    """Tests seed 000 over HTTP with the broker on MongoDB (needs_work, then working with an
    open stdout_0, then done), then that a WebSocket replays the worksheet's every seq once,
    in order."""
    chain = mongo_chain
    start(chain, mongodb_mode)
    code = 'import time\nprint(2)\ntime.sleep(2)\nprint(3)\nprint("hello")'
    status, accepted = chain.evaluate("wstein/myws/5", code)
    assert status == 202 and accepted["status"] == "needs_work"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        _, doc = chain.update("wstein/myws/5", wait=2)
        if doc["output"]:
            break
    assert doc["status"] == "working" and doc["input"] == code
    assert doc["output"]["stdout_0"]["content"] == "2\n"
    assert doc["output"]["stdout_0"]["state"] == "open"
    done = chain.wait_done("wstein/myws/5")
    block = done["output"]["stdout_0"]
    assert (done["status"], block["content"], block["state"]) == ("done", "2\n3\nhello\n",
                                                                  "closed")
    assert replayed_seqs(chain, "wstein", "myws") == list(range(1, done["seq"] + 1))


def test_interact(mongo_chain: Chain, mongodb_mode: str) -> None:
    """Tests seed 001's interact with the broker on MongoDB: the controls, then the output
    of the last of several changes."""
    chain = mongo_chain
    start(chain, mongodb_mode)
    chain.evaluate("u/ws/1", SEED)
    block = interact_block(chain.wait_done("u/ws/1"))
    assert block["layout"] == ["n"] and text_of(block) == "1\n"
    for state, value in enumerate((3, 5, 7), start=1):
        status, body = post_interact(chain, "u/ws/1", block["interact_id"], {"n": value}, state)
        assert status == 202 and body["status"] == "needs_work"
    assert text_of(wait_interact_text(chain, "u/ws/1", "7\n")) == "7\n"


@pytest.mark.timeout(150)
def test_broker_sigkill_exactly_once(mongo_chain: Chain, mongodb_mode: str) -> None:
    """Tests that cells streaming through broker SIGKILLs and restarts, with the store on
    MongoDB, end done with every line in order (tests/test_chaos.py's check): exactly once
    on a replica set; on a standalone server, which has no transactions, at least once (a
    broker killed between storing output and its receipts stores a resent record again, as
    README says)."""
    crash_broker_while_streaming(mongo_chain, worksheets=4, rounds=2,
                                 repeats=mongodb_mode == "standalone")

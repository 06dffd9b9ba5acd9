"""``DELETE /home/USER/WORKSHEET`` (broker/deletion.py) against what can happen while it runs:
the broker killed between its first write and the last part of the messages. Real chains (a
broker on a real SQLite file with a small ``--user-output``, a real device, a gateway with
``--auth token``); the interleaving is made, not hoped for: the broker is frozen (SIGSTOP)
the moment the store's file shows the first write, then killed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
import time
from contextlib import closing

from access_util import store_path
from harness import Chain
from test_delete_runs import OPTIONS, delete, evaluate, start, stored_messages, wait_status
from test_store_quota import QUOTA, kept_bytes

#: Messages put into the worksheet's session before it is deleted: a dozen parts of 5,000,
#: so the deletion is still going when the test sees its first write.
LEFTOVER = 60_000


def _fill(chain: Chain, session: str, parent: str) -> None:
    """Append :data:`LEFTOVER` output messages of the run ``parent`` to ``session``, as a
    broker would have stored them (the broker is stopped meanwhile)."""
    from broker.store import open_store
    from test_store_contract import jmsg

    async def fill() -> None:
        async with open_store(chain.store) as store:
            for _ in range(LEFTOVER // 5000):
                await store.append_messages([(session, jmsg(
                    "stream", session=session, parent=parent,
                    content={"name": "stdout", "text": "line\n"})) for _ in range(5000)])

    asyncio.run(fill())


def _requests_of(chain: Chain, user: str, worksheet: str) -> int:
    with closing(sqlite3.connect(f"file:{store_path(chain)}?mode=ro", uri=True)) as db:
        (n,) = db.execute("SELECT COUNT(*) FROM requests WHERE user = ? AND worksheet = ?",
                          (user, worksheet)).fetchone()
    return int(n)


def test_a_broker_killed_mid_deletion_finishes_it_at_its_next_start(chain: Chain) -> None:
    """ann's worksheet ws ran ``x = 41`` and holds 60,000 messages (about 4 MiB, over her
    256 KiB quota). Her DELETE is under way: its first write (requests, layout, positions)
    is in the store's file, the messages' parts are not all done, and the broker is frozen
    there, then killed with SIGKILL. After a restart the worksheet is one never run, whole:
    none of its messages is left, its session is not open (her next cell runs in a fresh
    session, where ``x`` is undefined, not in the old worker), and what she keeps is counted
    without them (that evaluate is accepted, not refused with 429)."""
    (ann,) = start(chain, "ann")
    assert evaluate(chain, ann, "ws/1", "x = 41").status == 202
    first = wait_status(chain, ann, "ws/1", ("done", "error"))
    assert first["status"] == "done", first
    broker = chain.broker
    assert broker is not None
    broker.stop()
    _fill(chain, first["session"], first["request"])
    assert kept_bytes(chain, "ann") > QUOTA
    broker = chain.start_broker(*OPTIONS)
    broker.wait_for_log(r"device device0 registered")

    answered: list[object] = []

    def deleting_it() -> None:
        try:
            answered.append(delete(chain, ann, "/home/ann/ws").status)
        except OSError as e:  # the gateway is gone when the test ends first
            answered.append(e)

    deleting = threading.Thread(target=deleting_it, daemon=True)
    deleting.start()
    deadline = time.monotonic() + 30
    while _requests_of(chain, "ann", "ws"):  # the first write is not in the file yet
        assert time.monotonic() < deadline, "the deletion's first write never came"
    os.kill(broker.proc.pid, signal.SIGSTOP)
    left = stored_messages(chain, "ann", "ws")
    assert left > 0, "the deletion ended before the broker was frozen: nothing to test"
    broker.stop(signal.SIGKILL)

    broker = chain.start_broker(*OPTIONS)
    broker.wait_for_log(r"device device0 registered")
    broker.wait_for_log(r"deletion of the runs of ann/ws was stopped mid-way; finished now")
    assert stored_messages(chain, "ann", "ws") == 0
    assert kept_bytes(chain, "ann") < QUOTA // 4
    again = evaluate(chain, ann, "ws/1", "print(globals().get('x'))")
    assert again.status == 202, again.body
    fresh = wait_status(chain, ann, "ws/1", ("done", "error"))
    assert fresh["status"] == "done", fresh
    assert fresh["session"] != first["session"]
    assert "None" in str(fresh["output"]), fresh["output"]
    assert 200 not in answered  # the killed broker never said it was deleted
    print(f"{left} of {LEFTOVER} messages were left when the broker was killed")

"""``DELETE /home/USER/WORKSHEET`` whose store fails after its first write (broker/deletion.py):
the answer says what was done, and the worksheet is left as that answer says.

A real chain (a broker on a real SQLite file, a device, a gateway with ``--auth token``). The
failure is made, not waited for: a trigger in the store's file refuses to delete messages, so
the deletion's first write (requests, layout, positions, sessions marked ``deleting``) goes
through and its first part of messages fails, every time; dropping the trigger lets the store
work again.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing

from access_util import store_path
from harness import Chain
from test_delete_runs import delete, evaluate, start, update, wait_status

REFUSE = ("CREATE TRIGGER refuse_deletes BEFORE DELETE ON messages BEGIN "
          "SELECT RAISE(ABORT, 'test: messages cannot be deleted now'); END")


def _store(chain: Chain, sql: str) -> list[tuple[object, ...]]:
    """Run ``sql`` on the chain's store file from outside the broker, as an operator would."""
    with closing(sqlite3.connect(store_path(chain), timeout=10, isolation_level=None)) as db:
        return db.execute(sql).fetchall()


def _deleting(chain: Chain) -> int:
    [(n,)] = _store(chain, "SELECT COUNT(*) FROM sessions WHERE user = 'ann' AND "
                           "worksheet = 'ws' AND state = 'deleting'")
    return int(n)


def test_a_delete_the_store_fails_mid_way_says_what_it_deleted(chain: Chain) -> None:
    """Tests that a DELETE whose messages the store fails to delete after its first write
    answers 503 saying the runs are deleted and their output not yet all (not "nothing was
    accepted", which was false: its cells answer 404 from then on), that the worksheet's
    next cell runs in a fresh session whose old worker is ended, and that DELETE again, once
    the store works, finishes the deletion."""
    (ann,) = start(chain, "ann")
    assert evaluate(chain, ann, "ws/1", "x = 41").status == 202
    first = wait_status(chain, ann, "ws/1", ("done", "error"))
    _store(chain, REFUSE)
    failed = delete(chain, ann, "/home/ann/ws")
    assert failed.status == 503, failed.body
    error = failed.body["error"]
    assert "nothing was accepted" not in error, error
    assert "runs of worksheet ws are deleted" in error and "DELETE it again" in error, error
    assert chain.broker is not None
    chain.broker.wait_for_log(r"the runs of ann/ws stopped after its first write")
    assert update(chain, ann, "ws/1").status == 404
    assert _deleting(chain) == 1
    [device] = chain.devices
    device.wait_for_log(rf"device: session {first['session']} closed \(shutdown requested\)")

    again = evaluate(chain, ann, "ws/2", "print(globals().get('x'))")
    assert again.status == 202, again.body
    fresh = wait_status(chain, ann, "ws/2", ("done", "error"))
    assert fresh["session"] != first["session"] and "None" in str(fresh["output"]), fresh

    _store(chain, "DROP TRIGGER refuse_deletes")
    assert delete(chain, ann, "/home/ann/ws").status == 200
    assert _deleting(chain) == 0

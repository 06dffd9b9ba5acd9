"""``GET /home/USER/WORKSHEET/session`` (gateway/sessionnotes.py) follows the rules of the
worksheet's other reads: with ``--auth token`` only its user may read its session notes;
anyone else gets the 404 of a cell that does not exist. Real chain on loopback."""

from __future__ import annotations

from access_util import add_user, bearer, call
from harness import Chain
from test_delete_runs import evaluate, wait_status


def test_only_the_worksheets_user_reads_its_session_notes(chain: Chain) -> None:
    ann = ("ann", add_user(chain, "ann"))
    bob = ("bob", add_user(chain, "bob"))
    chain.start_broker()
    chain.start_device()
    chain.start_gateway("--auth", "token")
    assert evaluate(chain, ann, "ws/1", "x = 1").status == 202
    assert wait_status(chain, ann, "ws/1", ("done",))["status"] == "done"
    mine = call(chain.port, "GET", "/home/ann/ws/session?since=0", None, bearer(ann[1]))
    assert mine.status == 200 and isinstance(mine.body["session"], str), mine.body
    assert mine.body["seq"] > 0, mine.body
    theirs = call(chain.port, "GET", "/home/ann/ws/session?since=0", None, bearer(bob[1]))
    assert theirs.status == 404, theirs.body
    nobody = call(chain.port, "GET", "/home/ann/ws/session?since=0")
    assert nobody.status in (401, 403), nobody.body

"""Who may delete, and how often: ``DELETE /home/USER/WORKSHEET`` follows the rules of the
other requests that end a session or write the store (gateway/guard.py). Real chain: a
broker on a real SQLite file, a device, a gateway with ``--auth token`` and a small
``--rate`` on loopback.
"""

from __future__ import annotations

from access_util import add_user, bearer, call
from harness import Chain
from test_delete_runs import evaluate, update, wait_status


def test_a_delete_counts_against_rate_as_a_restart_does(chain: Chain) -> None:
    """--rate 2/min: ann's evaluate and her restart (which closes the session, as a
    DELETE does) empty her bucket; her DELETE of the worksheet is then 429 with
    Retry-After, before anything reaches the broker: the worksheet's cell is still there.
    bob's bucket is his own (his DELETE of his worksheet is 200), and another user's
    worksheet answers 404 whatever the rate.
    Before any of it, ann cannot reach bob's worksheet by an encoded path, a page of another
    origin (with her token) or another site (with her cookie), or a name over the limit."""
    ann = ("ann", add_user(chain, "ann"))
    bob = ("bob", add_user(chain, "bob"))
    chain.start_broker()
    chain.start_device()
    chain.start_gateway("--auth", "token", "--rate", "2/min")
    assert evaluate(chain, bob, "ws/1", "print(2)").status == 202
    assert wait_status(chain, bob, "ws/1", ("done",))["status"] == "done"
    cookie = {"Cookie": f"cellbus_token_{chain.port}={ann[1]}", "Sec-Fetch-Site": "cross-site"}
    for path, headers, status in (
            ("/home/ann%2F..%2Fbob/ws", bearer(ann[1]), 404),
            ("/home/bob/ws", {**bearer(ann[1]), "Origin": "http://evil.example"}, 403),
            ("/home/ann/ws", cookie, 403),
            ("/home/ann/" + "w" * 201, bearer(ann[1]), 400)):
        answer = call(chain.port, "DELETE", path, None, headers)
        assert answer.status == status, (path, answer.body)
    assert update(chain, bob, "ws/1").status == 200
    assert evaluate(chain, ann, "ws/1", "print(1)").status == 202
    assert wait_status(chain, ann, "ws/1", ("done",))["status"] == "done"
    restart = call(chain.port, "POST", "/home/ann/ws/1/restart", "", bearer(ann[1]))
    assert restart.status == 202, restart.body
    refused = call(chain.port, "DELETE", "/home/ann/ws", None, bearer(ann[1]))
    assert refused.status == 429 and "too many" in refused.body["error"], refused.body
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert update(chain, ann, "ws/1").status == 200  # nothing was deleted
    theirs = call(chain.port, "DELETE", "/home/ann/ws", None, bearer(bob[1]))
    assert theirs.status == 404, theirs.body
    assert call(chain.port, "DELETE", "/home/bob/ws", None, bearer(bob[1])).status == 200

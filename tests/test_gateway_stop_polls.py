"""A gateway stopped (SIGTERM) while clients long-poll answers each of them before it closes
their connections: a poll ends as it would at its first change, with the document as it
stands, so the client asks again (another gateway, or this one restarted) and loses nothing.
Before, the gateway closed the connection under the waiting handler: the client got no
answer at all, and the gateway logged ``ERROR 500 GET …/update``."""

from __future__ import annotations

import http.client
import json
import signal
import threading
from typing import Any

from harness import Chain
from test_failures import wait_output

#: Runs well past the test (the poll must wait for nothing it will see).
SLOW = "import time\nprint('started', flush=True)\ntime.sleep(60)"


def test_a_gateway_stopping_answers_its_long_polls(chain: Chain) -> None:
    """Tests that an /update long-poll and a /session long-poll, both waiting when the
    gateway gets SIGTERM, are answered 200 with the document as it stands, and the gateway
    logs no 500."""
    chain.start_broker()
    chain.start_device()
    gateway = chain.start_gateway()
    assert chain.evaluate("u/ws/1", SLOW)[0] == 202
    wait_output(chain, "u/ws/1", "started")
    status, doc = chain.update("u/ws/1")
    assert status == 200 and doc["status"] == "working", doc
    _, notes = chain.http("GET", "/home/u/ws/session?since=0")
    answers: dict[str, tuple[int, Any]] = {}
    polls = {"update": f"/home/u/ws/1/update?since={doc['seq']}&wait=30",
             "session": f"/home/u/ws/session?since={notes['seq']}"
                        f"&session={notes['session']}&wait=30"}
    conns = {name: http.client.HTTPConnection("127.0.0.1", chain.port, timeout=30)
             for name in polls}
    for name, path in polls.items():
        conns[name].request("GET", path)

    def take(name: str) -> None:
        try:
            resp = conns[name].getresponse()
            answers[name] = (resp.status, json.loads(resp.read()))
        except (OSError, http.client.HTTPException) as e:
            answers[name] = (0, repr(e))

    threads = [threading.Thread(target=take, args=(name,)) for name in polls]
    for thread in threads:
        thread.start()
    # Both polls have had their first answer from the broker (one link, answered in order)
    # once a later read of the same worksheet is answered: they are waiting now.
    assert chain.update("u/ws/1")[0] == 200
    assert chain.http("GET", "/home/u/ws/session?since=0")[0] == 200
    gateway.proc.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(15)
    for conn in conns.values():
        conn.close()
    assert answers["update"][0] == 200, answers
    assert answers["update"][1]["status"] == "working", answers
    assert answers["session"][0] == 200, answers
    assert answers["session"][1]["session"] == notes["session"], answers
    assert gateway.proc.wait(15) == 0, gateway.log
    assert " 500 " not in gateway.log, gateway.log

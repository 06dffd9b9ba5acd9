"""@interact over HTTP, through the whole chain: the seed's example, coalescing, and an
interact past the idle timeout."""

from __future__ import annotations

import json
import time

SEED = "@interact\ndef f(n=slider(1, 20, step=1)):\n    print(n)"


def interact_block(doc: dict) -> dict:
    return [b for b in doc["output"].values() if b["type"] == "interact"][0]


def post_interact(chain, cell: str, interact_id: str, values: dict, state: int) -> tuple:
    return chain.http("POST", f"/home/{cell}/interact", json.dumps(
        {"interact_id": interact_id, "values": values, "state": state}).encode())


def text_of(block: dict) -> str:
    return "".join(b.get("content", "") for b in block["output"].values() if b["type"] == "text")


def wait_interact_text(chain, cell: str, expected: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, doc = chain.update(cell, wait=1)
        block = interact_block(doc)
        if text_of(block) == expected:
            return block
    raise AssertionError(f"interact output never became {expected!r}: {text_of(block)!r}")


def test_seed_example_over_http(shared_chain) -> None:
    chain = shared_chain
    chain.evaluate("seed/ws/1", SEED)
    block = interact_block(chain.wait_done("seed/ws/1"))
    assert block["controls"]["n"] == {"type": "slider", "start": 1, "end": 20, "step": 1,
                                      "default": 1, "label": "n"}
    assert block["layout"] == ["n"] and text_of(block) == "1\n"
    for state, value in enumerate((3, 5, 7), start=1):
        status, body = post_interact(chain, "seed/ws/1", block["interact_id"], {"n": value}, state)
        assert status == 202 and body["status"] == "needs_work"
    assert text_of(wait_interact_text(chain, "seed/ws/1", "7\n")) == "7\n"


def slide(chain, user: str, code: str, changes: int) -> None:
    """Evaluate an interact of ``n`` in USER/ws/1, post n = 1 ... ``changes`` as fast as the
    gateway answers, and wait until the last one's output shows."""
    cell = f"{user}/ws/1"
    chain.evaluate(cell, code)
    block = interact_block(chain.wait_done(cell))
    for state in range(1, changes + 1):
        assert post_interact(chain, cell, block["interact_id"], {"n": state}, state)[0] == 202
    wait_interact_text(chain, cell, f"{changes}\n")


def test_rapid_changes_are_coalesced_and_end_on_the_last(shared_chain) -> None:
    chain = shared_chain
    slide(chain, "rapid", "import time\nruns = []\n@interact\ndef f(n=(1, 20)):\n"
                 "    runs.append(n)\n    time.sleep(0.2)\n    print(n)", 20)
    chain.evaluate("rapid/ws/2", "print(len(runs) - 1, runs[-1])")
    ran, last = chain.wait_done("rapid/ws/2")["output"]["stdout_0"]["content"].split()
    print(f"20 changes -> {ran} runs")
    assert int(last) == 20 and int(ran) < 20


def test_changes_arriving_as_runs_end_keep_the_broker_up(shared_chain) -> None:
    """Runs as short as the gap between requests: a run's end (which sends the newest waiting
    one and supersedes the rest) and a new request (which supersedes the waiting ones) race
    over the same waiting runs. The loser must skip what the winner superseded; it used to
    raise and stop the broker, leaving every later request unanswered."""
    chain = shared_chain
    slide(chain, "race", "import time\n@interact\ndef f(n=(1, 100)):\n    time.sleep(0.003)\n"
                 "    print(n)", 100)
    chain.evaluate("race/ws/2", "print('still here')")
    assert chain.wait_done("race/ws/2")["output"]["stdout_0"]["content"] == "still here\n"
    assert "crashed" not in chain.broker.log


def test_bad_requests(shared_chain) -> None:
    chain = shared_chain
    assert post_interact(chain, "bad/ws/9", "nope", {}, 1)[0] == 404
    chain.evaluate("bad/ws/1", SEED)
    block = interact_block(chain.wait_done("bad/ws/1"))
    assert post_interact(chain, "bad/ws/1", block["interact_id"], [], 1)[0] == 400
    status, body = chain.http("POST", "/home/bad/ws/1/interact", b"not json")
    assert status == 400 and "JSON" in body["error"]
    post_interact(chain, "bad/ws/1", block["interact_id"], {"n": "seven"}, 1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        inner = interact_block(chain.update("bad/ws/1", wait=1)[1])["output"]
        if any(b["type"] == "error" for b in inner.values()):
            break
    error = [b for b in inner.values() if b["type"] == "error"][0]
    assert "'seven' is not a number" in error["evalue"]

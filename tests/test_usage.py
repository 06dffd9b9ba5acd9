"""What each execution used (metadata.usage) and the limits a request asks for itself
(protocol.asked), over a real chain: broker, device with sandboxed workers, gateway."""

from __future__ import annotations

import json
from typing import Any

from harness import Chain

MiB = 2 ** 20


def run(chain: Chain, cell: str, code: str, limits: dict[str, Any] | None = None
        ) -> dict[str, Any]:
    """Evaluate ``code`` (with ``limits``) and return the finished cell's document."""
    body: dict[str, Any] = {"input": code}
    if limits is not None:
        body["limits"] = limits
    status, answer = chain.http("POST", f"/home/{cell}/evaluate", json.dumps(body).encode())
    assert status == 202, answer
    return chain.wait_done(cell, timeout=60)


def error_of(doc: dict[str, Any]) -> dict[str, Any]:
    errors = [b for b in doc["output"].values() if b["type"] == "error"]
    assert errors, doc
    return errors[0]


def test_every_execution_reports_what_it_used(running_chain: Chain) -> None:
    """Tests that a sleeping cell reports its wall time and almost no CPU, an allocating
    one its peak memory, a spawning one its processes, a printing one its output bytes."""
    chain = running_chain
    doc = run(chain, "ann/use/1", "import time\ntime.sleep(1)")
    usage = doc["usage"]
    assert usage["wall_seconds"] >= 1.0, usage
    assert usage["cpu_seconds"] < 0.5, usage
    assert usage["processes"] == 0, usage

    doc = run(chain, "ann/use/2", "x = b'\\x01' * (200 * 2**20)\nprint(len(x))\ndel x")
    assert doc["usage"]["peak_memory_bytes"] >= 200 * MiB, doc["usage"]
    assert doc["usage"]["cpu_seconds"] < doc["usage"]["wall_seconds"] + 0.5

    doc = run(chain, "ann/use/3", "import subprocess\n"
                                  "for _ in range(3): subprocess.run(['true'])\n"
                                  "print('x' * 5000)")
    usage = doc["usage"]
    assert usage["processes"] == 3, usage
    assert usage["output_bytes"] >= 5000, usage
    # The small cell after the big one: the peak is this cell's, not the session's.
    doc = run(chain, "ann/use/2", "y = 1")
    assert doc["usage"]["peak_memory_bytes"] < 200 * MiB, doc["usage"]
    # Below the worker's earlier peak, the device's samples of it tell this cell's.
    doc = run(chain, "ann/use/2", "import time\nx = b'\\x01' * (150 * 2**20)\ntime.sleep(0.3)")
    assert 150 * MiB <= doc["usage"]["peak_memory_bytes"] < 200 * MiB, doc["usage"]


def test_a_request_may_ask_for_tighter_limits_never_looser(chain: Chain) -> None:
    """Tests that a request's own wall, memory and CPU limits end its cell with that limit's
    error on a live session, that a limit above the device's maximum is a 400 naming it,
    and that malformed limits are a 400 too."""
    chain.start_broker()
    chain.start_device("--max-memory", str(1024 * MiB), "--exec-timeout", "60")
    chain.start_gateway()
    assert run(chain, "bo/lim/0", "z = 41")["status"] == "done"  # a live session

    doc = run(chain, "bo/lim/1", "import time\ntime.sleep(30)", {"wall": 1})
    error = error_of(doc)
    assert error["ename"] == "TimeLimitExceeded" and "limits.wall" in error["evalue"], error
    assert 1 <= doc["usage"]["wall_seconds"] < 30, doc["usage"]  # the device's view of it

    # 128 MiB on top of what the session holds: 300 MiB more is too much.
    doc = run(chain, "bo/lim/2", "x = b'\\x01' * (300 * 2**20)", {"memory": "128M"})
    error = error_of(doc)
    assert error["ename"] == "MemoryError" and "128 MiB (limits.memory)" in error["evalue"], \
        error
    doc = run(chain, "bo/lim/2", "y = b'\\x01' * (50 * 2**20)", {"memory": "128M"})
    assert doc["status"] == "done", doc  # within what it asked for
    # The session goes on, with the device's own limits again.
    doc = run(chain, "bo/lim/3", "x = b'\\x01' * (300 * 2**20)\nprint(len(x))")
    assert doc["status"] == "done", doc

    doc = run(chain, "bo/lim/4", "while True: pass", {"cpu": 1})
    error = error_of(doc)
    assert error["ename"] == "CPULimitExceeded" and "limits.cpu" in error["evalue"], error

    for limits, words in (({"memory": "2G"}, "maximum of 1 GiB (--max-memory)"),
                          ({"wall": 61}, "maximum of 60 s (--exec-timeout)"),
                          ({"cpu": -1}, "positive"), ({"disk": 1}, "unknown limits disk"),
                          ("5s", "must be an object")):
        status, answer = chain.http("POST", "/home/bo/lim/5/evaluate", json.dumps(
            {"input": "1", "limits": limits}).encode())
        assert status == 400 and words in answer["error"], (limits, answer)

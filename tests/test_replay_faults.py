"""Faults during a long replay: a page subscribes to a worksheet with megabytes of history
while one of its cells still streams, and the broker dies before the replay has it all. The
live output that came meanwhile waited in the subscription; it must not be delivered past the
history the replay never got to (a gap no later output fills: the subscription's seq had
moved past it), and once a broker is back the page gets every message once, in order."""

from __future__ import annotations

import json
import signal
from typing import Any

from harness import Chain, until
from raw_ws import TEXT, RawSocket

#: About 6 MiB of history (under the 8 MiB a run may print), many replay pages of 1 MiB:
#: more than the socket buffers between the gateway and a client that reads slowly.
HISTORY = "for i in range(6000):\n    print(str(i).rjust(6) + 'x' * 990)\n"
LIVE = "import time\nfor i in range(30):\n    print('live', i, flush=True)\n    time.sleep(0.1)\n"


def live_lines(chain: Chain) -> int:
    status, doc = chain.update("u/w/live")
    assert status == 200, doc
    return sum(b["content"].count("\n") for b in doc["output"].values() if b["type"] == "text")


def next_message(raw: RawSocket) -> dict[str, Any]:
    frame = raw.read_frame(timeout=30)
    assert frame is not None and frame[0] == TEXT, f"the socket ended: {frame}"
    return json.loads(frame[1])


def test_a_replay_the_broker_dies_in_leaves_no_gap(chain: Chain) -> None:
    """Tests that a subscription whose replay failed (the broker SIGKILLed mid-replay, the
    page reading slowly) delivers nothing past the history it has not replayed, and that
    with a broker back the page has every seq of the session exactly once, in order (before:
    the live lines held during the replay went out at once, after the first page, and the
    rest of the history never came)."""
    chain.start_broker()
    chain.start_device()
    chain.start_gateway("--client-buffer", str(256 * 1024))
    assert chain.evaluate("u/w/history", HISTORY)[0] == 202
    chain.wait_done("u/w/history", timeout=60)
    assert chain.evaluate("u/w/live", LIVE)[0] == 202
    until(lambda: live_lines(chain) >= 1, "the live cell to stream")
    raw = RawSocket(chain.port, rcvbuf=4096)  # a slow reader: the replay waits on it
    try:
        raw.send_json("subscribe_request", {"user": "u", "worksheet": "w", "since": 0})
        got = [next_message(raw)]
        seen = live_lines(chain)
        until(lambda: live_lines(chain) >= seen + 2, "live output during the replay")
        broker = chain.broker
        assert broker is not None
        broker.stop(signal.SIGKILL)
        while (msg := next_message(raw))["msg_type"] not in ("error_reply", "subscribe_reply"):
            got.append(msg)
        assert msg["msg_type"] == "error_reply", "the replay ended before the broker died"
        chain.start_broker()
        while not (msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
                   and msg["metadata"]["cellbus"].get("cell_id") == "live"
                   and any(m["msg_type"] == "execute_reply" and
                           m["metadata"]["cellbus"].get("cell_id") == "live" for m in got)):
            msg = next_message(raw)
            got.append(msg)
    finally:
        raw.close()
    seqs = [m["metadata"]["cellbus"]["seq"] for m in got if "seq" in m["metadata"]["cellbus"]]
    assert seqs == list(range(1, len(seqs) + 1)), \
        f"{len(seqs)} seqs, first gap after {next(a for a, b in zip(seqs, seqs[1:]) if b != a + 1)}"
    live = "".join(m["content"]["text"] for m in got if m["msg_type"] == "stream"
                   and m["metadata"]["cellbus"].get("cell_id") == "live")
    assert live == "".join(f"live {i}\n" for i in range(30))

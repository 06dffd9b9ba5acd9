"""The whole chain on a JSON bus (``--packer json``, as towards Jupyter peers).

Found while hardening the nodes against bad input: a WebSocket subscription to a worksheet
whose cell wrote a file made the broker pack the file's bytes into a JSON reply; the packing
error escaped its request task and stopped the broker. Replays now carry no file bytes (the
browser fetches files by URL), and a reply that cannot be packed becomes an error answer.
"""

from __future__ import annotations

import asyncio
import json

from fuzz_clients import ws_exchange
from harness import Chain


def test_subscription_replays_a_file_output_on_a_json_bus(chain: Chain) -> None:
    chain.start_broker("--packer", "json")
    chain.start_device("--packer", "json")
    chain.start_gateway("--packer", "json")
    assert chain.evaluate("u/w/c", "open('a.txt', 'w').write('hello file')")[0] == 202
    doc = chain.wait_done("u/w/c")
    assert doc["status"] == "done" and any(b["type"] == "file" for b in doc["output"].values())
    subscribe = json.dumps({"header": {"msg_type": "subscribe_request"},
                            "content": {"user": "u", "worksheet": "w", "since": 0}})
    result = asyncio.run(ws_exchange(chain.port, [subscribe]))
    assert result.replies[0]["content"]["ok"] is True, result.replies
    assert result.outputs == result.replies[0]["content"]["seq"] > 0
    assert chain.broker is not None and chain.broker.proc.poll() is None
    assert " ERROR " not in chain.broker.log

"""Jupyter's kernels REST and channels WebSocket on the gateway, over the whole chain."""

from __future__ import annotations

import json
import uuid

import pytest

from jupyter_ws import Channels, stdout


def start_kernel(chain) -> str:
    status, doc = chain.http("POST", "/api/kernels", json.dumps({"name": "python3"}).encode())
    assert status == 201, doc
    uuid.UUID(doc["id"])
    assert doc["name"] == "python3" and doc["connections"] == 0
    return doc["id"]


@pytest.mark.parametrize("binary", [False, True], ids=["legacy-json", "v1-binary"])
async def test_execute_over_channels(running_chain, binary: bool) -> None:
    """kernel_info is answered; print, a result and an error come as Jupyter's messages on
    their channels, in both wire formats."""
    kernel_id = start_kernel(running_chain)
    ch = await Channels.open(running_chain.port, kernel_id, binary=binary)
    try:
        info = await ch.send("kernel_info_request", {})
        got = await ch.until(lambda m: m["msg_type"] == "kernel_info_reply")
        reply = got[-1]
        assert reply["channel"] == "shell"
        assert reply["parent_header"]["msg_id"] == info["header"]["msg_id"]
        assert reply["content"]["language_info"]["name"] == "python"
        msgs = await ch.execute("print('hello'); 6 * 7")
        kinds = [m["msg_type"] for m in msgs]
        assert kinds[0] == "status" and msgs[0]["content"]["execution_state"] == "busy"
        assert "execute_input" in kinds and "execute_reply" in kinds
        assert stdout(msgs) == "hello\n"
        result = next(m for m in msgs if m["msg_type"] == "execute_result")
        assert result["content"]["data"]["text/plain"] == "42"
        assert result["channel"] == "iopub"
        assert next(m for m in msgs if m["msg_type"] == "execute_reply")["channel"] == "shell"
        assert all("cellbus" not in m["metadata"] for m in msgs)
        msgs = await ch.execute("1/0")
        error = next(m for m in msgs if m["msg_type"] == "error")
        assert error["content"]["ename"] == "ZeroDivisionError"
        reply = next(m for m in msgs if m["msg_type"] == "execute_reply")
        assert reply["content"]["status"] == "error"
    finally:
        await ch.close()

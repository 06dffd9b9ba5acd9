"""After a restart, a kernel's channels socket sends nothing of the kernel session that ended.

@jupyterlab/services takes every message's ``header.session`` as the kernel's session as it
receives it, and cancels the handling of a message whose session is no longer that one
("Canceling handling of old message"): a message of the ended session that comes after one
of the new session makes it cancel new messages still being handled (a comm_open, a reply,
an iopub message its listeners never see) and set the kernel's status from the old one (an
``idle`` while the new kernel starts). A Jupyter server never sends it: the old kernel's
sockets go with it. JupyterLab's restart is ``POST /restart`` and then a new socket with the
same ``session_id``; the replay of that socket starts in the new session, but the old
session's last messages (its running cell's ``SessionClosed`` error, reply and idle) came
live after the new session's first ones whenever the device was slower than the gateway.

Here the device is paused (SIGSTOP) from before the restart until the new socket has had a
message of the new session, so the old session's end surely comes after it."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

from jupyter_ws import Channels


def idle_of(request: dict[str, Any]) -> Any:
    mine = request["header"]["msg_id"]
    return lambda m: m["parent_header"].get("msg_id") == mine and m["msg_type"] == "status" \
        and m["content"]["execution_state"] == "idle"


async def test_nothing_of_the_ended_session_comes_after_the_new_one(running_chain) -> None:
    chain = running_chain
    status, doc = chain.http("POST", "/api/kernels", json.dumps({"name": "python"}).encode())
    assert status == 201, doc
    kernel_id = doc["id"]
    ch = await Channels.open(chain.port, kernel_id)
    try:
        await ch.send("execute_request", {"code": "import time\nprint('zzz', flush=True)\n"
                                                  "time.sleep(60)", "silent": False})
        got = await ch.until(lambda m: m["msg_type"] == "stream", timeout=60)
        old = got[-1]["header"]["session"]
        device = chain.devices[0].proc.pid
        os.kill(device, signal.SIGSTOP)
        try:
            assert chain.http("POST", f"/api/kernels/{kernel_id}/restart")[0] == 200
            await ch.close()  # JupyterLab's restart reconnects (same session_id)
            ch = await Channels.open(chain.port, kernel_id, client=ch.client)
            info = await ch.send("kernel_info_request", {})
            got = await ch.until(idle_of(info))
            new = got[-1]["header"]["session"]
            assert new != old, got
        finally:
            os.kill(device, signal.SIGCONT)
        probe = await ch.send("execute_request", {"code": "print('new')", "silent": False})
        got += await ch.until(idle_of(probe), timeout=60)
        assert "new\n" in [m["content"].get("text") for m in got], got
        sessions = [m["header"]["session"] for m in got]
        assert sessions[sessions.index(new):] == [new] * (len(sessions) - sessions.index(new)), \
            [(m["msg_type"], m["header"]["session"]) for m in got]
    finally:
        await ch.close()

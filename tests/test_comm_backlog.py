"""A client's comm messages cannot pile up in a device without bound.

Comm messages from a Jupyter client are not stored and not counted by ``--rate`` (a widget
sends one per slider step); the device queues them behind the session's running cell. One
user flooding 1 MiB comm messages at a kernel busy in a ``time.sleep`` grew the device by
300 MB in 15 s (measured through a real gateway), and would take the device, and every
session on it, down. Now one session's worker holds at most ``COMM_BACKLOG_BYTES`` of them;
more are dropped and logged. A real device and worker; the test client stands in for the
broker.
"""

from __future__ import annotations

from typing import Any

import pytest

from device.backlog import COMM_BACKLOG_BYTES
from harness import BusClient, of_type, stdout_of

#: 1 MiB comm messages sent while the cell runs: far over the backlog.
FLOOD = 96
MIB = 1024 * 1024
PAYLOAD = "x" * (MIB - 64)


def comm_msg(client: BusClient, n: int, in_buffers: bool) -> Any:
    """A 1 MiB comm message for session ``s``: its bytes in its content, or in a buffer (a
    widget's bytes), which counts the same; its msg_id."""
    if not in_buffers:
        return client.request("comm_msg", {"comm_id": "c", "data": {"n": n, "x": PAYLOAD}},
                              "s")["msg_id"]
    msg = client.session.msg("comm_msg", {"comm_id": "c", "data": {"n": n}},
                             metadata={"cellbus": {"session": "s"}})
    msg["buffers"] = [PAYLOAD.encode()]
    client.sock.send_multipart(client.session.serialize(msg))
    return msg["msg_id"]


@pytest.mark.parametrize("in_buffers", [False, True], ids=["content", "buffers"])
def test_a_comm_flood_behind_a_running_cell_is_bounded(device_with_client,
                                                       in_buffers: bool) -> None:
    """Each comm message a worker gets is framed by busy and idle (parented by it): count
    those that reached the worker once the flood has drained."""
    client, device = device_with_client()
    busy = client.execute("import time; time.sleep(60)", "s")
    client.wait_for(lambda m: m["msg_type"] == "status" and m["parent_header"].get("msg_id")
                    == busy["msg_id"] and m["content"]["execution_state"] == "busy")
    flood = {comm_msg(client, n, in_buffers) for n in range(FLOOD)}
    # The device handles what it is sent in order: once the interrupt that follows the
    # flood is answered, every comm message of it has been queued or dropped.
    interrupt = client.request("interrupt_request", {}, "s")
    client.wait_for(lambda m: m["msg_type"] == "interrupt_reply"
                    and m["parent_header"]["msg_id"] == interrupt["msg_id"], timeout=60)
    msgs = client.run("print('after')", "s", timeout=60)  # queued behind what was kept
    assert not of_type(msgs, "error") and stdout_of(msgs) == "after\n"
    reached = {m["parent_header"].get("msg_id") for _, m in client.inbox
               if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"}
    assert 0 < len(reached & flood) <= COMM_BACKLOG_BYTES // MIB, len(reached & flood)
    device.wait_for_log(r"device dropped \d+ comm messages? for session s: over 8 MiB "
                        r"\(or 1000\) of them were held behind its running cell")

"""Two gateways on one broker (DESIGN.md: gateways behind a load balancer): what a Jupyter
client does to a kernel through one gateway reaches the kernel's channels open on the other.
A ``DELETE /api/kernels/ID`` through gateway A makes the channels socket on gateway B see
``status: dead`` and close with a reason, as jupyter_server closes a shut-down kernel's
channels; before, B's socket stayed open (the shutdown was told to A's sockets only), and the
next cell sent on it brought the kernel back in a new session. An interrupt or a restart
through A reaches B's client as the kernel's own messages, and B's socket stays open."""

from __future__ import annotations

import asyncio

from harness import Chain, free_port
from jupyter_ws import Channels, stdout
from test_jupyter_api import start_kernel

LONG = "import time\nprint('zzz', flush=True)\ntime.sleep(60)"


def _two_gateways(chain: Chain) -> tuple[int, int]:
    """Broker, a device and gateways A and B; their ports (``chain.port`` is A's)."""
    chain.start_broker()
    chain.start_device()
    a = chain.port
    chain.port = free_port()
    chain.start_gateway(name="gateway-b")
    b, chain.port = chain.port, a
    chain.start_gateway(name="gateway-a")
    return a, b


async def test_a_shutdown_through_one_gateway_ends_the_channels_on_another(
        chain: Chain) -> None:
    """Tests that, with a client on gateway B's channels: an interrupt through A's REST ends
    B's running cell (KeyboardInterrupt); a restart through A leaves B's socket open and its
    next cell runs in the fresh kernel (x is gone); a DELETE through A makes B's socket see
    ``dead`` and close with a reason that says the kernel was shut down."""
    a, b = _two_gateways(chain)
    kernel_id = start_kernel(chain)
    on_b = await Channels.open(b, kernel_id, binary=True)
    closed = False
    try:
        assert stdout(await on_b.execute("x = 1; print(x)")) == "1\n"
        request = await on_b.send("execute_request", {"code": LONG})
        await on_b.until(lambda m: m["msg_type"] == "stream")
        status, _ = await asyncio.to_thread(
            chain.http, "POST", f"/api/kernels/{kernel_id}/interrupt", b"")
        assert status == 204
        got = await on_b.until(lambda m: m["msg_type"] == "execute_reply"
                               and m["parent_header"]["msg_id"] == request["header"]["msg_id"])
        assert got[-1]["content"]["ename"] == "KeyboardInterrupt", got[-1]

        status, _ = await asyncio.to_thread(
            chain.http, "POST", f"/api/kernels/{kernel_id}/restart", b"")
        assert status == 200
        msgs = await on_b.execute("print(globals().get('x'))")
        assert stdout(msgs) == "None\n", msgs

        status, _ = await asyncio.to_thread(chain.http, "DELETE", f"/api/kernels/{kernel_id}")
        assert status == 204
        got = await on_b.until(lambda m: m["msg_type"] == "status"
                               and m["content"]["execution_state"] == "dead", timeout=15)
        assert not any(m["msg_type"] == "session_closed" for m in got)
        closed = await asyncio.wait_for(on_b.ws.read_message(), 10) is None
        assert closed and on_b.ws.close_code == 1000, on_b.ws.close_code
        assert "shut down" in (on_b.ws.close_reason or ""), on_b.ws.close_reason
    finally:
        if closed:
            on_b.ws.close()
        else:
            await on_b.close()
    assert chain.http("GET", f"/api/kernels/{kernel_id}")[0] == 404

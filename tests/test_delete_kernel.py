"""``DELETE /home/USER/KERNEL_ID`` (a Jupyter kernel id is a worksheet's name): it deletes
the kernel's runs and closes its session, which ends the kernel, so its channels sockets are
told so as ``DELETE /api/kernels/ID`` tells them. Real chain, a Jupyter channels client
(tests/jupyter_ws.py) on loopback, ``--auth none`` (Jupyter's user ``anonymous``).
"""

from __future__ import annotations

import asyncio

from harness import Chain
from jupyter_ws import Channels, stdout
from test_jupyter_api import start_kernel


async def test_deleting_a_kernels_runs_ends_the_kernel_on_its_channels(
        running_chain: Chain) -> None:
    """A kernel ran ``x = 41`` on a channels socket. DELETE /home/anonymous/KERNEL_ID
    answers 200 and the kernel is gone (GET /api/kernels/ID is 404): its socket sees the
    status ``dead`` and is closed, as after DELETE /api/kernels/ID, rather than staying
    open to run its next cell in a new session that brings the kernel back under its id
    (with nothing of the Jupyter session that started it)."""
    chain = running_chain
    kernel_id = start_kernel(chain)
    ch = await Channels.open(chain.port, kernel_id)
    closed = False
    try:
        assert stdout(await ch.execute("x = 41; print(x)")) == "41\n"
        status, body = await asyncio.to_thread(
            chain.http, "DELETE", f"/home/anonymous/{kernel_id}")
        assert status == 200 and body["deleted"]["requests"] >= 2, body
        got = await ch.until(lambda m: m["msg_type"] == "status"
                             and m["content"]["execution_state"] == "dead", timeout=10)
        assert not any(m["msg_type"] == "execute_reply" for m in got)
        closed = await asyncio.wait_for(ch.ws.read_message(), 10) is None
        assert closed
    finally:
        if closed:  # by the gateway: the client's side closes without a handshake to wait on
            ch.ws.close()
        else:
            await ch.close()
    assert chain.http("GET", f"/api/kernels/{kernel_id}")[0] == 404

"""A Jupyter channels client whose gateway is SIGKILLed mid-stream, coming back with its
``session_id`` through the other gateway (two behind one load balancer) or the same one
restarted: it gets every line after the ones it had, in order. The delivery position the
killed gateway wrote last may lag what the client had (at least once: the position is
written as the client's side acknowledges, one write in flight, and a SIGKILL loses the
write in flight), so what comes again is bounded: the messages after that position only.
What reached the client before its gateway died is what it had: the test reads it all (a
line the gateway wrote just before the kill, and so counted delivered, came after the one
the test waited for, and the test, which had stopped reading there, took it for lost)."""

from __future__ import annotations

import asyncio
import signal

import pytest

from harness import Chain, free_port
from jupyter_ws import Channels, stdout
from test_jupyter_api import start_kernel

LINES = 400
CODE = (f"import time\nfor i in range({LINES}):\n    print(f'line {{i:04d}}', flush=True)\n"
        "    time.sleep(0.005)\n")


def two_gateways(chain: Chain) -> tuple[int, int]:
    """Broker, a device and gateways A (``chain.gateway``, ``chain.port``) and B."""
    chain.start_broker()
    chain.start_device()
    a = chain.port
    chain.port = free_port()
    chain.start_gateway(name="gateway-b")
    b, chain.port = chain.port, a
    chain.start_gateway(name="gateway-a")
    return a, b


def is_idle_of(request: dict) -> object:
    return lambda m: (m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
                      and m["parent_header"].get("msg_id") == request["header"]["msg_id"])


@pytest.mark.parametrize("back", ["other", "same"])
async def test_a_channels_client_whose_gateway_dies_resumes_through_another(
        chain: Chain, back: str) -> None:
    a, b = two_gateways(chain)
    kernel_id = await asyncio.to_thread(start_kernel, chain)
    for round_ in range(2):
        tab = await Channels.open(a, kernel_id, client=f"tab{round_}")
        request = await tab.send("execute_request", {"code": CODE, "silent": False})
        had = await until_text(tab, "line 0100")
        assert chain.gateway is not None
        await asyncio.to_thread(chain.gateway.stop, signal.SIGKILL)
        had += await tab.until_closed()  # lines on their way when it died reached the tab
        tab.ws.close()
        if back == "same":
            await asyncio.to_thread(chain.start_gateway, name="gateway-a")
        again = await Channels.open(a if back == "same" else b, kernel_id,
                                    client=f"tab{round_}")
        try:
            rest = await again.until(is_idle_of(request), timeout=60)
        finally:
            await again.close()
        full = "".join(f"line {i:04d}\n" for i in range(LINES))
        seen, more = stdout(had), stdout(rest)
        assert full.startswith(seen) and full.endswith(more), (round_, seen[-30:], more[:30])
        assert len(seen) + len(more) >= len(full), f"round {round_}: lines were lost"
        again_lines = (len(seen) + len(more) - len(full)) // len("line 0000\n")
        assert again_lines < 100, f"round {round_}: {again_lines} lines came again"
        if back == "other":
            await asyncio.to_thread(chain.start_gateway, name="gateway-a")


async def until_text(tab: Channels, text: str) -> list[dict]:
    """``tab``'s messages until its stdout holds ``text`` (lines may come in pieces)."""
    got: list[dict] = []
    while text not in stdout(got):
        got.append(await tab.recv())
    return got

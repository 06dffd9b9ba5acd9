"""A WebSocket client that drops its connection again and again (abruptly, no close handshake)
while a long output streams, and across a broker SIGKILL and restart, each time coming back
with the ``since`` and ``session`` it had: it gets every seq once, in order, every line.
A guard: it held as it was (flt6)."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

from tornado.websocket import websocket_connect

from harness import Chain
from jupyter_ws import stdout
from test_chain_ws import send, seqs

LINES = 4000
CODE = (f"import time\nfor i in range({LINES}):\n    print(f'line {{i:05d}} ' + 'x' * 40, "
        "flush=True)\n    if i % 200 == 0: time.sleep(0.15)\n")
FULL = "".join(f"line {i:05d} {'x' * 40}\n" for i in range(LINES))
#: The reconnect after which the broker is SIGKILLed and started again on its store.
KILL_AT = 4


def restart_broker(chain: Chain) -> None:
    assert chain.broker is not None
    chain.broker.proc.send_signal(signal.SIGKILL)
    chain.broker.proc.wait()
    chain.start_broker()


async def test_a_websocket_reconnecting_again_and_again_gets_each_seq_once(
        running_chain: Chain) -> None:
    chain = running_chain
    got: list[dict[str, Any]] = []
    last, session, done, rounds = 0, None, False, 0
    while not done:
        rounds += 1
        assert rounds < 80, f"not done after {rounds} connections, at seq {last}"
        ws = await websocket_connect(f"ws://127.0.0.1:{chain.port}/ws")
        await send(ws, "subscribe_request", {"user": "u", "worksheet": "w", "since": last,
                                             **({"session": session} if session else {})})
        if rounds == 1:
            await send(ws, "execute_request", {"code": CODE}, user="u", worksheet="w",
                       cell_id="c1")
        try:
            async with asyncio.timeout(1):  # then the connection breaks, mid-output
                while (raw := await ws.read_message()) is not None:
                    msg = json.loads(raw)
                    facts = msg["metadata"].get("cellbus", {})
                    if "seq" in facts:
                        got.append(msg)
                        last, session = facts["seq"], facts.get("session", session)
                    if msg["msg_type"] == "execute_reply":
                        done = True
                        break
        except TimeoutError:
            pass
        assert ws.stream is not None
        ws.stream.close()  # abruptly: no close handshake
        ws.close()  # (tornado's bookkeeping only: the connection is gone)
        if rounds == KILL_AT:
            restart_broker(chain)
    assert seqs(got) == list(range(1, last + 1)), "a gap or a repeat"
    assert stdout(got) == FULL

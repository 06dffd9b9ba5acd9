"""Faults at moments a SIGKILL from outside cannot aim at: the broker dies between the
store's commit of a batch and its publication (broker/crashpoint.py). The batch is stored and
acknowledged, so its device never sends it again, and no gateway ever saw it: a subscriber
must still get every message of the run once, in order, from the store."""

from __future__ import annotations

import asyncio

import pytest
from tornado.websocket import websocket_connect

from broker.crashpoint import ENV
from harness import Chain, wait_gateway_linked
from jupyter_ws import Channels, stdout
from test_chain_ws import close, read_until, send, seqs
from test_jupyter_api import start_kernel

CODE = ("import time\nfor i in range(3):\n    print('line', i, flush=True)\n"
        "    time.sleep(0.2)\n")


def is_idle_after_reply(msgs: list[dict]):
    replied = False

    def check(msg: dict) -> bool:
        nonlocal replied
        msgs.append(msg)
        replied = replied or msg["msg_type"] == "execute_reply"
        return replied and msg["msg_type"] == "status" and \
            msg["content"].get("execution_state") == "idle"
    return check


@pytest.mark.parametrize("moment", ["status:idle", "execute_reply"])
async def test_a_websocket_gets_output_the_broker_stored_but_never_published(
        chain: Chain, monkeypatch: pytest.MonkeyPatch, moment: str) -> None:
    """The broker stores a run's last batch (its idle status, or its reply) and dies before
    publishing it; once a new broker runs, the subscribed socket gets the rest of the run,
    each seq once and in order (before, nothing told the gateway it had missed anything: the
    cell stayed running on every page that watched it until reloaded)."""
    monkeypatch.setenv(ENV, moment)
    chain.start_broker()
    monkeypatch.delenv(ENV)
    chain.start_device()
    chain.start_gateway()
    ws = await websocket_connect(f"ws://127.0.0.1:{chain.port}/ws")
    await send(ws, "subscribe_request", {"user": "u", "worksheet": "w", "since": 0})
    await read_until(ws, lambda m: m["msg_type"] == "subscribe_reply")
    await send(ws, "execute_request", {"code": CODE}, user="u", worksheet="w", cell_id="c1")
    broker = chain.broker
    assert broker is not None
    await asyncio.to_thread(broker.proc.wait, 30)  # it killed itself after that commit
    await asyncio.to_thread(chain.start_broker)
    got: list[dict] = []
    try:
        await read_until(ws, is_idle_after_reply(got), timeout=15)
    except TimeoutError:
        raise AssertionError(f"the run's end never came; got {[m['msg_type'] for m in got]}"
                             f"\nbroker log:\n{broker.log[-2000:]}") from None
    finally:
        await close(ws)
    numbered = seqs(got)
    assert numbered == list(range(numbered[0], numbered[0] + len(numbered))), numbered
    text = "".join(m["content"]["text"] for m in got if m["msg_type"] == "stream")
    assert text == "".join(f"line {i}\n" for i in range(3))


async def test_a_jupyter_client_gets_output_the_broker_stored_but_never_published(
        chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same moment under a Jupyter client's channels (its own subscription kind, by
    client session_id): the run's idle status, stored and never published, still comes."""
    chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    kernel_id = await asyncio.to_thread(start_kernel, chain)
    broker = chain.broker
    assert broker is not None
    await asyncio.to_thread(broker.stop)  # the next broker dies at the run's idle
    monkeypatch.setenv(ENV, "status:idle")
    await asyncio.to_thread(chain.start_broker)
    monkeypatch.delenv(ENV)
    await asyncio.to_thread(wait_gateway_linked, chain)
    channels = await Channels.open(chain.port, kernel_id)
    try:
        request = await channels.send("execute_request", {"code": CODE, "silent": False})
        await asyncio.to_thread(chain.broker.proc.wait, 30)  # it killed itself there
        await asyncio.to_thread(chain.start_broker)
        got = await channels.until(lambda m: m["parent_header"].get("msg_id") ==
                                   request["header"]["msg_id"] and m["msg_type"] == "status"
                                   and m["content"]["execution_state"] == "idle", timeout=15)
    finally:
        await channels.close()
    assert stdout(got) == "".join(f"line {i}\n" for i in range(3))

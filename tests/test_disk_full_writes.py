"""Every kind of write a client can ask for, while the store's disk is full: each gets a clear
refusal (507, or 503 with Retry-After, saying the store cannot write), never a 500 or a
hang, the broker stays up, and each works once space returns (tests/test_disk_full.py walks
the evaluate's whole arc; this one the siblings: an interact, a layout save, a permalink, a
restart, a worksheet's deletion, a Jupyter kernel's start, an execute over the WebSocket)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from tornado.websocket import websocket_connect

from harness import Chain, NodeProcess
from test_chain_interact import interact_block
from test_chain_ws import close, read_until, send
from test_disk_full import disk, fill  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(240)

CELL = "u/ws/1"
FLOOD = "for i in range(4000):\n    print('line', i, 'x' * 1000, flush=True)\n"


def writes(chain: Chain, interact_id: str) -> dict[str, tuple[int, Any]]:
    """Each write over HTTP once: its status and body."""
    body = json.dumps
    return {
        "interact": chain.http("POST", f"/home/{CELL}/interact", body(
            {"interact_id": interact_id, "values": {"n": 5}, "state": 1}).encode()),
        "layout": chain.http("POST", "/home/u/ws/layout", body(
            {"cells": [{"id": "1", "type": "code", "code": "print(1)"}]}).encode()),
        "permalink": chain.http("POST", "/permalink", body({"code": "print(2)"}).encode()),
        "restart": chain.http("POST", "/home/u/other/1/restart", b"{}"),
        "kernel": chain.http("POST", "/api/kernels", body({"name": "python"}).encode()),
        "delete": chain.http("DELETE", "/home/u/gone"),
    }


async def ws_execute(chain: Chain) -> dict[str, Any]:
    ws = await websocket_connect(f"ws://127.0.0.1:{chain.port}/ws")
    try:
        await send(ws, "execute_request", {"code": "print(3)"}, user="u", worksheet="wsock",
                   cell_id="1")
        got = await read_until(ws, lambda m: m["msg_type"] == "request_accepted")
        return got[-1]["content"]
    finally:
        await close(ws)


def test_every_write_is_refused_clearly_while_the_disk_is_full(
        disk: Path, key_file: Path, nodes: list[NodeProcess]) -> None:  # noqa: F811
    chain = Chain(key_file, f"sqlite:///{disk / 'cellbus.db'}", nodes)
    broker = chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    assert chain.evaluate(CELL, "@interact\ndef f(n=(1, 10)):\n    print(n)")[0] == 202
    interact_id = interact_block(chain.wait_done(CELL))["interact_id"]
    for cell in ("u/gone/1", "u/other/1"):  # one to delete, one to restart
        assert chain.evaluate(cell, "print('ran')")[0] == 202
        chain.wait_done(cell)
    ballast = fill(disk)
    # Small writes go on in the WAL's space; a flood needs more, and finds the disk full.
    flooding = chain.evaluate("u/flood/1", FLOOD)[0]
    assert flooding in (202, 507), flooding
    if flooding == 202:  # refused already if not: the store knows
        broker.wait_for_log(r"the store cannot write", timeout=60)
    answers = writes(chain, interact_id)
    ws = asyncio.run(ws_execute(chain))
    try:
        for what, (status, reply) in answers.items():
            assert status in (503, 507), (what, status, reply)
            text = json.dumps(reply)
            assert "store" in text or "disk" in text, (what, reply)
        assert ws.get("ok") is False and ws.get("http_status") in (503, 507), ws
        assert broker.proc.poll() is None
    finally:
        ballast.unlink()
    if flooding == 202:
        broker.wait_for_log(r"the store writes again", timeout=60)
    after = writes(chain, interact_id)
    assert {what: status for what, (status, _) in after.items()} == {
        "interact": 202, "layout": 200, "permalink": 201, "restart": 202, "kernel": 201,
        "delete": 200}, after
    assert asyncio.run(ws_execute(chain)).get("ok") is True
    if flooding == 202:  # accepted: all of it, once
        flood = chain.wait_done("u/flood/1", timeout=120)
        text = "".join(b["content"] for b in flood["output"].values() if b["type"] == "text")
        assert text.splitlines() == [f"line {i} {'x' * 1000}" for i in range(4000)]
    assert "Traceback" not in broker.log

"""A worker that forges: nothing it says about identity or routing is believed.

Two real sessions on one device, behind a real broker and gateway. The attacker's worker
(``tests/forger.py``, a backend that writes straight onto its link) sends records claiming
the victim's session, request, header and routing facts, every bus control message, and
malformed and oversized frames. The victim sees nothing of it (its cell, its WebSocket feed
and the store hold none of the forged text); the first forged record ends the attacker's
worker (``LinkViolation`` in its cell) and is counted (``bin/cellbus status`` shows the
count), the device logs it once per worker, and it keeps serving both sessions. A second
test does the same from plain user code in the default Python backend, which finds its
link's descriptor by itself; a third checks that the device refuses every one of the
forger's records as a violation (see also test_link_malformed.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from fuzz_clients import close, is_output
from device.admission import refusal
from forger import forgeries
from harness import Chain, chain_status, wait_gateway_linked, worker_pid
from protocol.errors import ProtocolError
from protocol.link import decode

TESTS = Path(__file__).resolve().parent
VICTIM, ATTACKER = "bob/victim/c1", "alice/attacker/c1"
REJECT_LINE = r"device rejected .* from worker {pid} "


def start(chain: Chain, monkeypatch: pytest.MonkeyPatch, *device_options: str) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    chain.start_broker()
    chain.start_device(*device_options)
    chain.start_gateway()
    wait_gateway_linked(chain)


def rejected_count(chain: Chain) -> int:
    """The REJECTED column of ``bin/cellbus status`` for the one device."""
    out = chain_status(chain)
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()[1:3]
    return int(row.split()[header.split().index("REJECTED")])


def wait_rejected(chain: Chain, expected: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (seen := rejected_count(chain)) != expected and time.monotonic() < deadline:
        time.sleep(0.3)
    assert seen == expected, f"bin/cellbus status shows {seen} rejected, expected {expected}"


def texts(doc: dict[str, Any]) -> str:
    return json.dumps(doc["output"])


def store_blobs(chain: Chain) -> bytes:
    """Every value of every table of the broker's SQLite store, as one byte string."""
    path = chain.store.removeprefix("sqlite:///")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        out = []
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                out += [v if isinstance(v, bytes) else str(v).encode() for v in row]
        return b"\n".join(out)
    finally:
        db.close()


class Feed:
    """Every message a WebSocket subscribed to the victim's worksheet receives."""

    def __init__(self, chain: Chain) -> None:
        self.chain, self.messages = chain, []  # type: ignore[var-annotated]
        self.loop = asyncio.new_event_loop()

        async def subscribe() -> WebSocketClientConnection:
            ws = await websocket_connect(f"ws://127.0.0.1:{chain.port}/ws")
            await ws.write_message(json.dumps({
                "header": {"msg_type": "subscribe_request"},
                "content": {"user": "bob", "worksheet": "victim", "since": 0}}))
            return ws

        self.ws = self.loop.run_until_complete(subscribe())

    def drain(self, seconds: float) -> list[dict[str, Any]]:
        async def read() -> None:
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                try:
                    raw = await asyncio.wait_for(self.ws.read_message(), left)
                except asyncio.TimeoutError:
                    return
                assert raw is not None, "the victim's WebSocket was closed"
                self.messages.append(json.loads(raw))
        self.loop.run_until_complete(read())
        return self.messages

    def close(self) -> None:
        self.loop.run_until_complete(close(self.ws))
        self.loop.close()


def evaluate(chain: Chain, cell: str, code: str) -> str:
    status, reply = chain.evaluate(cell, code)
    assert status == 202, reply
    return reply["msg_id"]


def test_forged_records_are_rejected_counted_logged_and_reach_no_one(
        chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    start(chain, monkeypatch, "--backend", "forger:ForgerBackend", "--max-sessions", "4")
    device = chain.devices[0]
    evaluate(chain, VICTIM, "B-before")
    victim = chain.wait_done(VICTIM)
    feed = Feed(chain)
    try:
        # The victim has a request running while the attack happens.
        running = evaluate(chain, VICTIM, "sleep 3")
        mark = f"M{uuid.uuid4().hex[:12]}"
        spec = {"other_session": victim["session"], "other_request": running, "mark": mark,
                "other_user": "bob", "other_worksheet": "victim", "other_cell": "c1"}
        evaluate(chain, ATTACKER, "forge " + json.dumps(spec))
        attacker = chain.wait_done(ATTACKER)
        assert attacker["status"] == "error" and "LinkViolation" in texts(attacker)
        assert "-forged-" not in texts(attacker)  # not even re-labelled as its own
        pid = worker_pid(device, attacker["session"])

        after = chain.wait_done(VICTIM)
        assert after["status"] == "done" and after["session"] == victim["session"]
        assert after["request"] == running and "slept" in texts(after)
        assert mark not in texts(after)
        seen = feed.drain(1.0)
        assert any(is_output(m) for m in seen), "the victim's feed saw its own output"
        assert mark not in json.dumps(seen), "a forged message reached the victim's socket"
        wait_rejected(chain, 1)  # the first ended the worker: nothing after it was read
        assert len(re.findall(REJECT_LINE.format(pid=pid), device.log)) == 1

        # A flood of control messages, then an oversized frame: each ends its worker.
        for n, code in enumerate(["flood 3000", "oversize"], 2):
            evaluate(chain, ATTACKER, code)
            ended = chain.wait_done(ATTACKER)
            assert ended["status"] == "error" and "LinkViolation" in texts(ended)
            pid = worker_pid(device, attacker["session"])
            wait_rejected(chain, n)
            assert len(re.findall(REJECT_LINE.format(pid=pid), device.log)) == 1

        # The device keeps serving both sessions; the attacker's in a fresh worker.
        evaluate(chain, VICTIM, "B-after")
        assert "B-after" in texts(chain.wait_done(VICTIM))
        evaluate(chain, ATTACKER, "A-after")
        assert "A-after" in texts(chain.wait_done(ATTACKER))
        assert mark not in json.dumps(feed.drain(0.5))
    finally:
        feed.close()
    blobs = store_blobs(chain)
    assert b"-forged-" not in blobs and b"forged-device" not in blobs
    status = chain_status(chain)
    assert "forged-device" not in status.stdout
    assert device.proc.poll() is None


USER_CODE_FORGER = r'''
import os, socket, stat, struct, msgpack
def link():
    for fd in range(3, 1024):
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
        except OSError:
            continue
        s = socket.socket(fileno=os.dup(fd))
        if s.family == socket.AF_UNIX and s.type == socket.SOCK_STREAM:
            return s
        s.close()
s = link()
F = "MARK" + "-for" + "ged-"  # never literally in this input
def send(record):
    body = msgpack.packb(record, use_bin_type=True)
    s.sendall(struct.pack("!I", len(body)) + body)
send({"msg_type": "stream", "content": {"name": "stdout", "text": F + "1\n"},
      "parent": OTHER_REQUEST})
send({"msg_type": "stream", "content": {"name": "stdout", "text": F + "2\n"},
      "metadata": {"cellbus": {"session": OTHER_SESSION}}})
send({"msg_type": "session_closed", "content": {"session": OTHER_SESSION, "reason": F + "3"}})
send({"msg_type": "device_register", "content": {"device": F + "4", "capacity": 99}})
print("MARK-legit")
'''


def test_user_code_writing_to_its_link_is_rejected_too(
        chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    """No special backend: ordinary Python in a cell finds its link socket and forges."""
    start(chain, monkeypatch)
    evaluate(chain, VICTIM, "print('B-before')")
    victim = chain.wait_done(VICTIM)
    mark = f"M{uuid.uuid4().hex[:12]}"
    code = (USER_CODE_FORGER.replace("MARK", mark)
            .replace("OTHER_REQUEST", repr(victim["request"]))
            .replace("OTHER_SESSION", repr(victim["session"])))
    evaluate(chain, ATTACKER, code)
    attacker = chain.wait_done(ATTACKER)
    assert attacker["status"] == "error" and "LinkViolation" in texts(attacker)
    assert "-forged-" not in texts(attacker)
    wait_rejected(chain, 1)
    evaluate(chain, VICTIM, "print('B-after')")
    after = chain.wait_done(VICTIM)
    assert after["session"] == victim["session"] and mark not in texts(after)
    blobs = store_blobs(chain)
    assert b"-forged-" not in blobs
    assert len(re.findall(r"device rejected .* from worker", chain.devices[0].log)) == 1


def test_every_forgery_is_a_violation() -> None:
    """Each record the forger sends, taken alone, is one the device ends a worker for."""
    spec = {"other_session": "s2", "other_request": "r2", "other_user": "bob",
            "other_worksheet": "w", "other_cell": "c1", "mark": "M"}
    items = forgeries(spec, "r1")
    assert len(items) > 30
    for item in items:
        if isinstance(item, bytes):  # a raw frame: length prefix, then a body
            with pytest.raises(ProtocolError):
                decode(item[4:])
        else:
            refused = refusal(item, running="r1", earlier={"r0"})
            assert refused is not None and refused.fatal, (item, refused)


# -- the same device checks without a broker: a signed test client stands in for it ----------

def forger_device(device_with_client, monkeypatch: pytest.MonkeyPatch, *options: str,
                  packer: str = "msgpack"):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    return device_with_client("--backend", "forger:ForgerBackend", *options, packer=packer)


def test_output_of_any_type_counts_against_max_output(device_with_client,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A 3 MB ``status`` record used to pass --max-output and pacing uncounted (only stream
    and display bytes were measured); now every record's bytes count."""
    client, _ = forger_device(device_with_client, monkeypatch, "--max-output", str(1 << 20))
    msgs = client.run("bigstatus 3000000", "s", timeout=30)
    errors = [m for m in msgs if m["msg_type"] == "error"]
    assert errors and errors[0]["content"]["ename"] == "OutputLimitExceeded", msgs
    assert all(len(json.dumps(m["content"])) < 100_000 for m in msgs)  # the padding stayed


def test_output_a_json_bus_cannot_carry_is_rejected_not_fatal(
        device_with_client, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a JSON bus, output holding bytes used to kill the worker's relay (a TypeError in
    the device); now each such record is rejected and the cell goes on."""
    client, device = forger_device(device_with_client, monkeypatch, packer="json")
    msgs = client.run("unjsonable", "s", timeout=30)
    assert [m["content"]["text"] for m in msgs if m["msg_type"] == "stream"] == ["after\n"]
    assert msgs[-1]["msg_type"] == "status" and not [m for m in msgs if m["msg_type"] == "error"]
    device.wait_for_log(r"device rejected a record from worker \d+ .*cannot be sent on")
    assert "Traceback" not in device.log

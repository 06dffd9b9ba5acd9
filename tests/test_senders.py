"""Messages are bound to who may send them: the broker stores a session's output only from the
device it handed that session to, takes requests only on the gateway port, and never takes
back a message it published (issue 20's audit, replayed here)."""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Any

import zmq

from harness import BusClient, Chain, FakeDevice, free_port
from protocol import msgtypes as mt
from protocol.wire import Session
from test_metrics import scrape


def feed_spy(chain: Chain) -> tuple[zmq.Context, zmq.Socket]:
    """A subscriber to the broker's feed with a gateway key (one that may read it), once it
    hears the feed: a SUB gets nothing published before its subscription reached the PUB
    (the ZeroMQ Guide's slow joiner), so probe cells run until one's output arrives (a whole
    run missed the execute_input of the cell evaluated right after connecting)."""
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    chain.client_keys("spy", "gateway").connect_with(sub)
    sub.subscribe(b"")
    sub.connect(chain.publish_ep)
    deadline = time.monotonic() + 30
    probe = 0
    while not sub.poll(1000):
        assert time.monotonic() < deadline, "the feed's subscriber heard nothing in 30 s"
        probe += 1
        assert chain.evaluate(f"spy/probe/{probe}", "pass")[0] == 202
    return ctx, sub


def catch(sub: zmq.Socket, key: bytes, code: str, timeout: float = 20.0) -> list[bytes]:
    """The raw frames of the published execute_input of ``code``."""
    reader = Session(key)
    deadline = time.monotonic() + timeout
    while sub.poll(max(0, int((deadline - time.monotonic()) * 1000))):
        frames = sub.recv_multipart()
        msg = reader.deserialize(frames)[1]
        if msg["msg_type"] == mt.EXECUTE_INPUT and msg["content"].get("code") == code:
            return frames
    raise AssertionError(f"no execute_input of {code!r} on the feed within {timeout} s")


def stored(chain: Chain, parent: str, msg_type: str) -> int:
    """How many messages of ``msg_type`` answering ``parent`` the broker's SQLite file holds."""
    db = sqlite3.connect(f"file:{chain.store.removeprefix('sqlite:///')}?mode=ro", uri=True)
    try:
        return db.execute("SELECT count(*) FROM messages WHERE parent = ? AND msg_type = ?",
                          (parent, msg_type)).fetchone()[0]
    finally:
        db.close()


def rejected(chain: Chain, reason: str) -> re.Match[str]:
    assert chain.broker is not None
    return chain.broker.wait_for_log(rf"broker refused .*\({reason}\)")


def test_a_published_message_sent_back_to_the_device_port_is_refused(chain: Chain,
                                                                     key: bytes) -> None:
    """Tests the audit of issue 20: a frame the broker published, sent unchanged to the
    device port by a DEALER with a made-up identity, is refused and not stored (before, it
    was stored as a second execute_input in the victim's session)."""
    chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    ctx, sub = feed_spy(chain)
    intruder = BusClient(key, keys=chain.client_keys("intruder", "device"))
    try:
        assert chain.evaluate("alice/ws/1", "print('the diary')")[0] == 202
        frames = catch(sub, key, "print('the diary')")
        assert chain.wait_done("alice/ws/1")["status"] == "done"
        intruder.sock.routing_id = b"made-up"
        intruder.sock.connect(chain.device_ep)
        intruder.sock.send_multipart(frames[1:])  # the topic frame off, the rest unchanged
        assert chain.evaluate("alice/ws/2", "print('after')")[0] == 202
        assert chain.wait_done("alice/ws/2")["status"] == "done"
        parent = Session(key).deserialize(frames)[1]["parent_header"]["msg_id"]
        assert stored(chain, parent, mt.EXECUTE_INPUT) == 1
        rejected(chain, "unknown-device|published")
        assert stored(chain, parent, mt.EXECUTE_INPUT) == 1
    finally:
        intruder.close()
        sub.close(0)
        ctx.term()


def test_output_and_requests_from_a_device_that_does_not_hold_the_session_are_refused(
        chain: Chain, key: bytes) -> None:
    """Tests that a registered device with a valid key cannot write into a session the
    broker handed to another device (its output is refused, counted and logged once), nor
    send a request on the device port, nor a message the broker published."""
    metrics_port = free_port()
    chain.start_broker("--metrics-port", str(metrics_port))
    chain.start_device()
    chain.start_gateway()
    ctx, sub = feed_spy(chain)
    rogue = FakeDevice(key, chain, "rogue")
    try:
        rogue.report("device_register", capacity=0, load=0, sessions=[])
        assert chain.broker is not None
        chain.broker.wait_for_log(r"device rogue registered")
        assert chain.evaluate("bob/ws/1", "print('mine')")[0] == 202
        frames = catch(sub, key, "print('mine')")
        assert chain.wait_done("bob/ws/1")["status"] == "done"
        published = Session(key).deserialize(frames)[1]
        session_id = published["metadata"]["cellbus"]["session"]
        request: dict[str, Any] = {"header": published["parent_header"],
                                   "msg_id": published["parent_header"]["msg_id"],
                                   "metadata": {"cellbus": {"session": session_id}}}
        for n in range(3):
            rogue.answer(request, (mt.STREAM, {"name": "stdout", "text": f"forged {n}\n"}))
        rogue.request(mt.EXECUTE_REQUEST, {"code": "1"}, session_id)
        rogue.sock.send_multipart(frames[1:])
        refused = {"not-holder": 3, "request": 1, "published": 1}
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        deadline = time.monotonic() + 15
        while (counts := {why: scrape(url).get(
                f'cellbus_bus_messages_rejected_total{{reason="{why}"}}') for why in refused}
               ) != refused and time.monotonic() < deadline:
            time.sleep(0.1)
        assert counts == refused
        assert chain.evaluate("bob/ws/2", "print('still mine')")[0] == 202
        assert chain.wait_done("bob/ws/2")["status"] == "done"
        assert stored(chain, published["parent_header"]["msg_id"], mt.STREAM) == 1
        assert stored(chain, published["parent_header"]["msg_id"], mt.EXECUTE_INPUT) == 1
        lines = re.findall(r"broker refused .* from 'rogue' .*", chain.broker.log)
        assert len(lines) == 1, lines  # one line per sender per minute
    finally:
        rogue.close()
        sub.close(0)
        ctx.term()


def test_a_device_name_stays_with_the_key_it_came_with(chain: Chain, key: bytes) -> None:
    """Tests that once a device registered under its name, another device key cannot take
    that name, even after the device left: its messages are refused (reason "key")."""
    chain.start_broker()
    device = chain.start_device(name="gpu1")
    device.stop()
    assert chain.broker is not None
    chain.broker.wait_for_log(r"device gpu1 left")
    impostor = BusClient(key, keys=chain.client_keys("impostor", "device"))
    try:
        impostor.sock.routing_id = b"gpu1"
        impostor.sock.connect(chain.device_ep)
        impostor.request(mt.DEVICE_REGISTER, {"device": "gpu1", "capacity": 4, "load": 0,
                                              "sessions": [], "requests": []}, None,
                         device="gpu1")
        rejected(chain, "key")
        assert len(re.findall(r"device gpu1 registered", chain.broker.log)) == 1
    finally:
        impostor.close()


def test_a_device_heard_before_it_registers_again_after_a_broker_restart_is_no_warning(
        chain: Chain) -> None:
    """Tests that output a device sends across a broker restart, before it has registered
    with the new broker (refused, and sent again by its outbox once it has), is said at INFO
    as what it is, not as a WARNING about an unknown device (an operator's every broker
    restart under load logged "broker refused a stream from 'device0' on the device port
    (unknown-device)"), and that nothing of the run is lost."""
    chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    code = "import time\nfor i in range(300):\n    print(i, flush=True); time.sleep(0.01)"
    assert chain.evaluate("ann/ws/1", code)[0] == 202
    for _ in range(10):  # until it streams
        if chain.update("ann/ws/1", wait=5)[1]["output"]:
            break
    assert chain.broker is not None and chain.broker.stop() == 0
    chain.start_broker()
    chain.broker.wait_for_log(r"before it registered again")
    done = chain.wait_done("ann/ws/1")
    assert done["output"]["stdout_0"]["content"] == "".join(f"{i}\n" for i in range(300))
    assert "(unknown-device)" not in chain.broker.log, chain.broker.log

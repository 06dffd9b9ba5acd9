"""Two machines on loopback with a TCP relay of the test's own between a device and the
broker (tests/tcp_relay.py), as a network that cuts, delays or corrupts the bus's CURVE
links: each fault is named in the nodes' logs once, not at every reconnect."""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime
from typing import Any

from harness import Chain, NodeProcess, stop_nodes, until
from protocol.heartbeat import EXPIRY
from protocol.linkwatch import REPEAT
from tcp_relay import Relay, port_of


class FlipOnce:
    """A relay's ``mangle`` that, once :attr:`armed`, changes one byte of the first chunk
    going ``way`` ("up" to the broker, "down" from it) longer than ``longer`` bytes: in a
    message's ciphertext, after the CURVE handshake (ZeroMQ's heartbeats are shorter than
    most messages); its last byte, or its ``middle`` one."""

    def __init__(self, way: str, *, longer: int = 0, middle: bool = False) -> None:
        self.way, self.longer, self.middle = way, longer, middle
        self.armed, self.flipped = threading.Event(), threading.Event()

    def __call__(self, way: str, offset: int, chunk: bytes) -> bytes:
        if (way != self.way or not self.armed.is_set() or len(chunk) <= self.longer
                or self.flipped.is_set()):
            return chunk
        self.flipped.set()
        at = len(chunk) // 2 if self.middle else len(chunk) - 1
        return chunk[:at] + bytes([chunk[at] ^ 0x01]) + chunk[at + 1:]


class DropOnce:
    """A relay's ``mangle`` that, once :attr:`armed`, drops the first chunk coming down from
    the broker longer than ``longer`` bytes and calls ``then`` (the relay's cut or rebind)
    in a thread of its own: a message lost with the connection that carried it."""

    def __init__(self, longer: int) -> None:
        self.longer = longer
        self.then: Any = None
        self.armed, self.dropped = threading.Event(), threading.Event()

    def __call__(self, way: str, offset: int, chunk: bytes) -> bytes:
        if (way != "down" or not self.armed.is_set() or len(chunk) <= self.longer
                or self.dropped.is_set()):
            return chunk
        self.dropped.set()
        threading.Thread(target=self.then).start()
        return b""


def device_behind(chain: Chain, relay: Relay) -> NodeProcess:
    """The chain's device started behind ``relay`` (on the broker's device port), its link
    to the broker up."""
    chain.device_ep = relay.endpoint
    device = chain.start_device()
    device.wait_for_log(r"link to the broker at \S+ is up")
    return device


def logged_at(line: str) -> float:
    """The time a node's log line was written (its first 23 characters), in seconds."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def texts_of(doc: dict[str, Any]) -> str:
    """The text of a cell's /update document's text blocks, in their order."""
    blocks = sorted(doc.get("output", {}).values(), key=lambda b: b["order"])
    return "".join(b["content"] for b in blocks if b["type"] == "text")


def test_a_link_cut_again_and_again_is_named_once(chain: Chain) -> None:
    """Tests that a device whose link the network cuts soon after each reconnect (a
    middlebox, an MTU black hole) logs "lost again and again" once while it goes on (the
    line says it is repeated only after REPEAT seconds), not at each cut: before, the line
    was forgotten at each handshake and logged again at every cut after the second."""
    chain.start_broker()
    relay = Relay(port_of(chain.device_ep))
    try:
        device = device_behind(chain, relay)
        for cut in range(1, 6):
            relay.cut()
            until(lambda n=cut: device.log.count("is up again") >= n, f"reconnect {cut}")
        flaps = device.log.count("is lost again and again within")
        assert flaps == 1, (flaps, REPEAT, device.log)
        assert device.proc.poll() is None
    finally:
        stop_nodes(chain.nodes)  # while the relay still carries the device's goodbye
        relay.close()


def test_a_message_changed_on_the_way_is_not_blamed_on_the_keys(chain: Chain) -> None:
    """Tests that a byte flipped on the way from the broker to a device, after their CURVE
    handshake passed, is logged by the device as a message changed on the way, once, and
    not as a wrong --broker-key (its keys are right: the handshake passed); and that the
    device links up again. Before, it logged the ERROR "the CURVE handshake with the broker
    at EP failed: --broker-key is not the public key of the broker", and its "no word from
    the broker" said so too; and it linked up again only when ZeroMQ's heartbeat ended the
    connection, which reads nothing after such a message (6 s, past the broker's expiry of
    a device, which took it for lost and ended its cells)."""
    chain.start_broker()
    flip = FlipOnce("down")

    relay = Relay(port_of(chain.device_ep), mangle=flip)
    try:
        device = device_behind(chain, relay)
        chain.start_gateway()
        flip.armed.set()  # the next bytes the broker sends the device (the cell's request)
        assert chain.evaluate("u/ws/1", "print('through')")[0] == 202
        device.wait_for_log(r"could not be decrypted")
        device.wait_for_log(r"is up again")
        assert flip.flipped.is_set()
        assert "--broker-key is not" not in device.log, device.log
        said = [line for line in device.log.splitlines()
                if "device: the link to the broker" in line and "not be decrypted" in line]
        assert len(said) == 1, device.log  # (its "no word from the broker" names it too)
        again = [line for line in device.log.splitlines() if "is up again" in line]
        # at once, not when ZeroMQ's heartbeat ends the connection (6 s, past the broker's
        # expiry of a device)
        assert logged_at(again[0]) - logged_at(said[0]) < EXPIRY, device.log
        assert chain.wait_done("u/ws/1", 30)["status"] in ("done", "error")
    finally:
        stop_nodes(chain.nodes)
        relay.close()


def test_a_hand_out_lost_with_its_connection_runs_once(chain: Chain) -> None:
    """Tests that a cell whose hand-out to a device is lost with the connection that
    carried it (the relay drops it and cuts; the device connects again at once, well within
    the broker's expiry) still runs, once: before, the broker reconciled a device's report
    only when it registered or came back from lost, so such a cell stayed unrun for good."""
    chain.start_broker()
    drop = DropOnce(1500)  # the hand-out, by its size (the code below is long; heartbeats
    relay = Relay(port_of(chain.device_ep), mangle=drop)  # are short)
    drop.then = relay.cut
    try:
        device_behind(chain, relay)
        chain.start_gateway()
        drop.armed.set()
        code = "print('through')  # " + "x" * 3000
        assert chain.evaluate("u/ws/1", code)[0] == 202
        until(drop.dropped.is_set, "the hand-out dropped")
        doc = chain.wait_done("u/ws/1", 20)
        texts = [b["content"] for b in doc["output"].values() if b["type"] == "text"]
        assert doc["status"] == "done" and texts == ["through\n"], doc
        assert "is lost" not in chain.broker.log  # it was never taken for lost
    finally:
        stop_nodes(chain.nodes)
        relay.close()


def test_a_byte_flipped_on_the_way_to_the_broker_loses_nothing(chain: Chain) -> None:
    """Tests that a byte flipped on the way from a device to the broker, after their CURVE
    handshake passed, in the middle of a running cell, costs the user nothing: the device
    links up again, the cell's output arrives whole, once and in order, and the session
    lives on (its worker runs the next cell). Before, the broker's end of that connection
    read nothing more while its heartbeats still reached the device, which so never took
    the broker for silent; the broker took the device for lost 3 s later and the cell ended
    DeviceLost after '4'; and the broker's log blamed a device's --broker-key."""
    chain.start_broker()
    flip = FlipOnce("up")

    relay = Relay(port_of(chain.device_ep), mangle=flip)
    try:
        device = device_behind(chain, relay)
        chain.start_gateway()
        code = ("import os, time\nprint(os.getpid(), flush=True)\n"
                "for i in range(40):\n    print(i, flush=True)\n    time.sleep(0.05)")
        assert chain.evaluate("u/ws/1", code)[0] == 202
        until(lambda: "\n3\n" in texts_of(chain.update("u/ws/1")[1]), "the cell running")
        flip.armed.set()  # the next bytes the device sends the broker (the cell's output)
        doc = chain.wait_done("u/ws/1", 30)
        assert flip.flipped.is_set()
        pid, *lines = texts_of(doc).splitlines()
        assert doc["status"] == "done" and lines == [str(i) for i in range(40)], (
            doc["status"], lines, chain.broker.log[-1500:], device.log[-1500:])
        assert "is lost" not in chain.broker.log, chain.broker.log  # nor its cells ended
        assert "connecting again as link 1" in device.log, device.log
        # the broker names a message changed on the way, not a device's wrong key
        assert "--broker-key is not" not in chain.broker.log, chain.broker.log
        assert "device port could not be decrypted after its connection's CURVE handshake " \
            "passed" in chain.broker.log, chain.broker.log
        assert chain.evaluate("u/ws/2", "import os; print(os.getpid())")[0] == 202
        second = chain.wait_done("u/ws/2", 20)
        again = [b["content"] for b in second["output"].values() if b["type"] == "text"]
        assert second["status"] == "done" and again == [pid + "\n"], second
    finally:
        stop_nodes(chain.nodes)
        relay.close()


def test_a_big_answer_changed_on_the_way_is_answered_at_once(chain: Chain) -> None:
    """Tests that a big /update answer whose bytes were changed on the way from the broker
    to the gateway (on the gateway's connection for big answers) gets a 503 that says so at
    once, and that the next read of it is whole; before, that connection, which no watch
    read, kept reading nothing until ZeroMQ's heartbeat ended it: the read waited its 10 s
    for a 503 "the broker did not answer", holding every other big read of the gateway
    behind it, and the next one got 503 "the broker is not reachable"."""
    chain.start_broker()
    flip = FlipOnce("down", longer=30000)  # a big answer's (small ones are short)

    relay = Relay(port_of(chain.gateway_ep), mangle=flip)
    try:
        chain.gateway_ep = relay.endpoint
        chain.start_device()
        gateway = chain.start_gateway()
        assert chain.evaluate("u/ws/1", "print('x' * 400000)")[0] == 202
        until(lambda: chain.update("u/ws/1", wait=5)[1].get("status") == "done", "the cell")
        flip.armed.set()  # its big document, read for the first time with since=1
        started = time.monotonic()
        status, body = chain.update("u/ws/1", since=1)
        took = time.monotonic() - started
        assert flip.flipped.is_set()
        assert status == 503 and "changed on the way" in body["error"], (status, body)
        assert took < EXPIRY, took
        status, body = until(lambda: (got := chain.update("u/ws/1", since=1))[0] == 200 and got,
                             "a whole answer", timeout=10)
        assert texts_of(body) == "x" * 400000 + "\n"
        gateway.wait_for_log(r"could not be decrypted")  # (its log is read by a thread)
    finally:
        stop_nodes(chain.nodes)
        relay.close()


def test_an_evaluates_answer_changed_on_the_way_is_not_a_503(chain: Chain) -> None:
    """Tests that an evaluate whose answer (202) was changed on the way from the broker to
    the gateway, after the broker had stored the request, still answers 202 with the stored
    request's msg_id, soon, and the cell runs once. Before, the gateway's connection read
    nothing more (the link watch's reconnect did not reach the gateway's DEALER, which was
    connected by itself): the client got 503 "the broker did not answer within 10 s; retry
    in 5 s" for a cell that was accepted and ran, and a retry would have run it twice."""
    chain.start_broker()
    flip = FlipOnce("down", longer=100, middle=True)  # the evaluate's answer

    relay = Relay(port_of(chain.gateway_ep), mangle=flip)
    try:
        chain.gateway_ep = relay.endpoint
        chain.start_device()
        gateway = chain.start_gateway()
        assert chain.evaluate("u/warm/1", "print(0)")[0] == 202  # both links up and used
        flip.armed.set()
        started = time.monotonic()
        status, body = chain.evaluate("u/ws/1", "print('ran')")
        took = time.monotonic() - started
        assert flip.flipped.is_set()
        assert status == 202, (status, body, gateway.log[-2000:])
        assert took < EXPIRY, took
        doc = chain.wait_done("u/ws/1", 20)
        assert doc["status"] == "done" and texts_of(doc) == "ran\n", doc
        assert doc["request"] == body["msg_id"] and doc["execution_count"] == 1, (doc, body)
        assert f"the answer to execute_request {body['msg_id']} was lost on the way" in \
            gateway.log, gateway.log
    finally:
        stop_nodes(chain.nodes)
        relay.close()


def test_a_device_moved_to_a_new_source_port_is_not_taken_for_lost(chain: Chain) -> None:
    """Tests a device whose connection a NAT moves to a new source port while a cell prints
    (tcp_relay's rebind: the device gets a reset and reconnects at once, while the broker's
    end of the old connection stays open and silent until ZeroMQ's heartbeat ends it, 6 s):
    the device makes its link anew under its next routing id, so the broker hears it within
    its expiry; the cell's lines all arrive once, in order, the device is never taken for
    lost, and the next cell runs. Before, the device came back under the id the old
    connection held, which the broker's ROUTER does not hear: the device was taken for lost
    and the cell ended DeviceLost after its first line."""
    chain.start_broker()
    relay = Relay(port_of(chain.device_ep))
    try:
        chain.device_ep = relay.endpoint
        chain.start_device()
        chain.start_gateway()
        code = "import time\nfor i in range(20):\n    print(i, flush=True)\n    time.sleep(0.2)"
        assert chain.evaluate("u/ws/1", code)[0] == 202
        until(lambda: texts_of(chain.update("u/ws/1")[1]).startswith("0\n"), "the cell started")
        relay.rebind()
        doc = chain.wait_done("u/ws/1", 30)
        assert doc["status"] == "done", doc
        assert texts_of(doc) == "".join(f"{i}\n" for i in range(20)), doc
        assert chain.evaluate("u/ws/2", "print('next')")[0] == 202
        assert texts_of(chain.wait_done("u/ws/2", 20)) == "next\n"
        assert chain.broker is not None and "is lost" not in chain.broker.log
        assert relay.accepted == 2  # the one reconnect, no more
    finally:
        stop_nodes(chain.nodes)
        relay.close()


def test_an_evaluates_answer_lost_with_its_link_is_not_a_503(chain: Chain) -> None:
    """Tests an evaluate whose answer (202) the network loses with the gateway's connection
    (the relay drops it and moves the gateway to a new source port, as a NAT does; the
    broker had stored the request): the gateway asks again under its msg_id once its link
    is up again and answers 202, and the cell runs once. Before, the gateway waited out its
    10 s for an answer its lost connection could never carry and said 503 "retry": a client
    that did so ran the cell twice."""
    chain.start_broker()
    drop = DropOnce(100)
    relay = Relay(port_of(chain.gateway_ep), mangle=drop)
    drop.then = relay.rebind
    try:
        chain.gateway_ep = relay.endpoint
        chain.start_device()
        gateway = chain.start_gateway()
        assert chain.evaluate("u/warm/1", "print(0)")[0] == 202  # both links up and used
        drop.armed.set()
        status, body = chain.evaluate("u/ws/1", "print('ran')")
        assert drop.dropped.is_set()
        assert status == 202, (status, body, gateway.log[-2000:])
        doc = chain.wait_done("u/ws/1", 20)
        assert doc["status"] == "done" and texts_of(doc) == "ran\n", doc
        assert doc["request"] == body["msg_id"] and doc["execution_count"] == 1, (doc, body)
    finally:
        stop_nodes(chain.nodes)
        relay.close()


def test_an_evaluate_changed_on_the_way_to_the_broker_is_answered_soon(chain: Chain) -> None:
    """Tests that an evaluate whose bytes were changed on the way from the gateway to the
    broker (which cannot decrypt it, and reads nothing more of that connection) is answered
    202 soon, and its cell runs once. Before, the broker's end read nothing until ZeroMQ's
    heartbeat ended the connection (6 s), nothing told the gateway, and the client got 503
    "the broker did not answer within 10 s" for a cell that never reached the broker. And
    once the gateway closed that connection (made anew here; a gateway restarted or killed
    does the same), libzmq aborted the broker at its next ZMTP ping on it."""
    chain.start_broker()
    flip = FlipOnce("up", longer=1500, middle=True)  # the evaluate (heartbeats are short)

    relay = Relay(port_of(chain.gateway_ep), mangle=flip)
    try:
        chain.gateway_ep = relay.endpoint
        chain.start_device()
        gateway = chain.start_gateway()
        assert chain.evaluate("u/warm/1", "print(0)")[0] == 202  # both links up and used
        flip.armed.set()
        started = time.monotonic()
        status, body = chain.evaluate("u/ws/1", "print('ran')  # " + "x" * 3000)
        took = time.monotonic() - started
        assert flip.flipped.is_set()
        assert status == 202, (status, body, gateway.log[-2000:], chain.broker.log[-2000:])
        assert took < EXPIRY, took
        doc = chain.wait_done("u/ws/1", 20)
        assert doc["status"] == "done" and texts_of(doc) == "ran\n", doc
        assert doc["request"] == body["msg_id"] and doc["execution_count"] == 1, (doc, body)
        assert chain.evaluate("u/ws/2", "print('next')")[0] == 202  # the link is whole
        assert texts_of(chain.wait_done("u/ws/2", 20)) == "next\n"
        # libzmq's abort, once the gateway had closed the connection the broker could not read
        assert "Assertion failed" not in chain.broker.log, chain.broker.log[-1500:]
        assert chain.broker.proc.poll() is None
    finally:
        stop_nodes(chain.nodes)
        relay.close()


def test_a_replayed_capture_of_a_gateways_evaluate_runs_nothing_again(chain: Chain) -> None:
    """Tests an attacker between the gateway and the broker who records every byte the
    gateway sends while a cell is evaluated, and plays them to the broker again on a
    connection of its own: the broker refuses the replayed handshake (logged), and
    the cell has run once (its execution count is still 1 after the worksheet's next cell
    ran as 2). (The device's link: tests/test_multihost_keys.py.)"""
    chain.start_broker()
    broker = port_of(chain.gateway_ep)
    relay = Relay(broker, record=True)
    try:
        chain.gateway_ep = relay.endpoint
        chain.start_device()
        chain.start_gateway()
        assert chain.evaluate("u/ws/1", "print('once')")[0] == 202
        assert texts_of(chain.wait_done("u/ws/1")) == "once\n"
        recorded = b"".join(bytes(r) for r in relay.recorded)
        assert chain.broker is not None
        with socket.create_connection(broker, 10) as replay:
            replay.sendall(recorded)
            chain.broker.wait_for_log(r"a CURVE handshake on the gateway port failed")
        assert chain.evaluate("u/ws/2", "print('next')")[0] == 202
        assert chain.wait_done("u/ws/2")["execution_count"] == 2
        assert chain.update("u/ws/1")[1]["execution_count"] == 1
    finally:
        stop_nodes(chain.nodes)
        relay.close()


def test_a_device_killed_after_a_byte_changed_on_its_way_leaves_the_broker_up(
        chain: Chain) -> None:
    """Tests that a device killed (kill -9) just after a byte of what it sent the broker was
    changed on the way leaves the broker running, and its cell ends with DeviceLost. Before,
    libzmq 4.3.5 aborted the broker ("Assertion failed: !_io_error
    (src/stream_engine_base.cpp:310)") at its next ZMTP ping on the connection it could not
    read, once the device's end had closed."""
    chain.start_broker()
    flip = FlipOnce("up")

    relay = Relay(port_of(chain.device_ep), mangle=flip)
    try:
        device = device_behind(chain, relay)
        chain.start_gateway()
        code = "import time\nfor i in range(100):\n    print(i, flush=True)\n    time.sleep(0.05)"
        assert chain.evaluate("u/ws/1", code)[0] == 202
        until(lambda: "\n3\n" in texts_of(chain.update("u/ws/1")[1]), "the cell running")
        flip.armed.set()  # the next bytes the device sends the broker (the cell's output)
        until(flip.flipped.is_set, "a byte changed")
        device.proc.kill()
        doc = chain.wait_done("u/ws/1", 30)
        assert doc["status"] == "error" and "DeviceLost" in str(doc), doc
        assert chain.broker.proc.poll() is None, chain.broker.log[-1500:]
        assert "Assertion failed" not in chain.broker.log, chain.broker.log[-1500:]
    finally:
        stop_nodes(chain.nodes)
        relay.close()

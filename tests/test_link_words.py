"""What an operator is told about a bus link that does not come up, or goes: a wrong
--broker-key, a key the broker does not hold, and the broker going away and coming back, each
named in the logs of the nodes concerned (and by ``bin/cellbus status`` and ``/ready``),
saying what to change. Before, all of them were silent, or blamed --key-file."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from typing import Any

from pathlib import Path

from harness import Chain, NodeProcess, cellbus_status, chain_status, free_port
from tcp_relay import port_of
from protocol.config import generate_key
from protocol.curve import make_certificate

WRONG_BROKER_KEY = r"CURVE handshake with the broker at {} failed: --broker-key is not"
NOT_HELD = r"the broker at {} refused this node's CURVE key: .*--curve-dir {}/ folder"


def ready(chain: Chain) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(chain.url("/ready"), timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


def test_a_wrong_broker_key_is_named_by_the_client_and_the_broker(chain: Chain) -> None:
    """Tests that a device and a gateway given another broker's public key say so in their
    logs (the device's 'no word from the broker' names it instead of --key-file), that the
    broker logs the failed handshakes on its ports, and that the gateway's /ready points at
    its log."""
    broker = chain.start_broker()
    elsewhere = chain.keys_dir.parent / "elsewhere"
    make_certificate(elsewhere, "broker", "broker")
    wrong = str(elsewhere / "broker.key")
    device = chain._start("device", "--connect", chain.device_ep, "--device-id", "d1",
                          "--prefork", "0", "--kernels", "python",
                          *chain.cert_options("d1", "device")[:2], "--broker-key", wrong)
    device.wait_for_log(WRONG_BROKER_KEY.format(chain.device_ep))
    device.wait_for_log(r"no word from the broker for \d+ s: the CURVE handshake .*--broker-key")
    broker.wait_for_log(r"CURVE handshake on the device port failed: a device whose "
                        r"--broker-key is not this broker's broker.key")
    gateway = chain.start_gateway("--broker-key", wrong, linked=False)
    gateway.wait_for_log(WRONG_BROKER_KEY.format(chain.gateway_ep))
    gateway.wait_for_log(WRONG_BROKER_KEY.format(chain.publish_ep))
    broker.wait_for_log(r"CURVE handshake on the gateway port failed")
    status, doc = ready(chain)
    assert status == 503
    assert any("CURVE handshake" in p and "log" in p for p in doc["problems"]), doc
    assert "registered" not in broker.log


def test_a_key_the_broker_does_not_hold_is_named_by_the_client(chain: Chain) -> None:
    """Tests that a gateway and ``bin/cellbus status`` whose certificates the broker's key
    folder does not hold say the broker refused their key, and where it must go."""
    chain.start_broker()
    elsewhere = chain.keys_dir.parent / "elsewhere"
    secret = make_certificate(elsewhere, "web9", "gateway")
    options = ["--curve-key", str(secret), "--broker-key", str(chain.keys_dir / "broker.key")]
    gateway = chain.start_gateway(*options[:2], linked=False)  # its --broker-key is the right one
    gateway.wait_for_log(NOT_HELD.format(chain.gateway_ep, "gateways"))
    done = cellbus_status("--broker", chain.gateway_ep, "--key-file", chain.key_file,
                          *options, "--timeout", "2")
    assert done.returncode == 1
    assert "refused this node's CURVE key" in done.stderr, done.stderr
    assert "gateways/ folder" in done.stderr, done.stderr


def test_a_gateway_says_when_it_loses_the_broker_and_when_it_is_back(chain: Chain) -> None:
    """Tests that a gateway logs its link to the broker coming up, going when the broker
    stops, and coming up again when a broker starts on the same endpoints."""
    broker = chain.start_broker()
    gateway = chain.start_gateway()
    gateway.wait_for_log(rf"link to the broker at {chain.gateway_ep} is up$")
    assert broker.stop() == 0
    gateway.wait_for_log(rf"lost its link to the broker at {chain.gateway_ep}")
    chain.start_broker()
    gateway.wait_for_log(rf"link to the broker at {chain.gateway_ep} is up again")
    answered = chain_status(chain)  # the broker answers again (with no device: not ready)
    assert answered.returncode == 3 and "ready: no" in answered.stdout, answered.stderr


def test_a_client_on_another_port_of_the_broker_is_told_which_bind_it_needs(
        chain: Chain) -> None:
    """Tests that a device whose --connect names the broker's gateway port, and a gateway
    whose --broker names its device port, each with a key the broker holds for its own role,
    are told that the endpoint may be the wrong port of the broker (before: only that the
    key was not in the broker's folder or was revoked, which sends an operator to remake a
    key that is fine)."""
    broker = chain.start_broker()
    device = chain._start("device", "--connect", chain.gateway_ep, "--device-id", "d1",
                          "--prefork", "0", "--kernels", "python",
                          *chain.cert_options("d1", "device"))
    device.wait_for_log(rf"the broker at {chain.gateway_ep} refused this node's CURVE key: "
                        r".*or --connect names another of its ports than its --device-bind")
    broker.wait_for_log(r"refused a CURVE client on the gateway port: the key of device d1")
    gateway = chain._start("gateway", "--port", str(chain.port), "--broker", chain.device_ep,
                           "--subscribe", chain.publish_ep,
                           *chain.cert_options("gateway", "gateway"))
    gateway.wait_for_log(rf"the broker at {chain.device_ep} refused this node's CURVE key: "
                         r".*or --broker or --subscribe names another of its ports than "
                         r"its --gateway-bind")


def test_a_gateway_whose_two_endpoints_are_swapped_is_told_of_the_ports(chain: Chain) -> None:
    """Tests that a gateway whose --subscribe names the broker's gateway port (and --broker
    its feed port), a socket type that port does not take, is told that the endpoints may
    name the wrong ports (before: only that its --broker-key was not the broker's, the one
    thing that was right)."""
    chain.start_broker()
    gateway = chain._start("gateway", "--port", str(chain.port), "--broker", chain.publish_ep,
                           "--subscribe", chain.gateway_ep,
                           *chain.cert_options("gateway", "gateway"))
    for endpoint in (chain.gateway_ep, chain.publish_ep):
        gateway.wait_for_log(rf"the CURVE handshake with the broker at {endpoint} failed: "
                             r".*or --broker or --subscribe names another of its ports than "
                             r"its --gateway-bind or --publish-bind")


def test_a_node_without_keys_is_told_the_broker_wants_them(chain: Chain) -> None:
    """Tests that a device started with --insecure-bus against a broker that encrypts its
    links is told to give CURVE keys (not that its --broker-key, which it has none of, is
    wrong), and that the broker names such a client among the causes."""
    broker = chain.start_broker()
    device = chain._start("device", "--connect", chain.device_ep, "--device-id", "d1",
                          "--prefork", "0", "--kernels", "python", "--insecure-bus")
    device.wait_for_log(rf"handshake with the broker at {chain.device_ep} failed: that broker "
                        r"encrypts its TCP links \(--curve-dir\) and this node has no CURVE keys")
    broker.wait_for_log(r"CURVE handshake on the device port failed: .*no CURVE keys")
    assert "--broker-key is not" not in device.log
    done = cellbus_status("--broker", chain.gateway_ep, "--key-file", chain.key_file,
                          "--insecure-bus", "--timeout", "2")
    assert done.returncode == 1 and "this node has no CURVE keys" in done.stderr, done.stderr


def test_nothing_listening_and_another_bus_key_are_told_apart(chain: Chain,
                                                              tmp_path: Path) -> None:
    """Tests that a gateway whose broker endpoint nothing listens on says, within seconds,
    that it has no link there, and that a device's 'no word from the broker' tells a link
    that never came up (is a broker there?) from one that is up while the broker drops
    what it signs (--key-file)."""
    nowhere = f"tcp://127.0.0.1:{free_port()}"
    gateway = chain._start("gateway", "--port", str(chain.port), "--broker", nowhere,
                           "--subscribe", chain.publish_ep,
                           *chain.cert_options("gateway", "gateway"))
    lonely = chain._start("device", "--connect", nowhere, "--device-id", "d0", "--prefork",
                          "0", "--kernels", "python", *chain.cert_options("d0", "device"))
    chain.start_broker()  # the three wait side by side
    other = tmp_path / "other.key"
    generate_key(other)
    wrong = NodeProcess("device", "--connect", chain.device_ep, "--device-id", "d1",
                        "--prefork", "0", "--kernels", "python",
                        *chain.cert_options("d1", "device"), "--key-file", str(other))
    chain.nodes.append(wrong)
    gateway.wait_for_log(rf"no link to the broker at {nowhere} after 5 s: is a broker "
                         "running there")
    lonely.wait_for_log(r"no word from the broker for \d+ s: no link to it at "
                        rf"{nowhere}: is a broker running there")
    wrong.wait_for_log(r"no word from the broker for \d+ s: its link to the broker at "
                       rf"{chain.device_ep} is up, .*--key-file")


def test_a_broker_host_name_that_does_not_resolve_is_named(chain: Chain) -> None:
    """Tests that a gateway and a device whose broker endpoint names a host that does not
    resolve (a typo; .invalid never resolves, RFC 6761) say so after 5 s, naming the host
    (before: "is a broker running there ...", sending the operator to the broker's host)."""
    nowhere = "tcp://cellbus-broker.invalid:5555"
    gateway = chain._start("gateway", "--port", str(chain.port), "--broker", nowhere,
                           "--subscribe", chain.publish_ep,
                           *chain.cert_options("gateway", "gateway"))
    device = chain._start("device", "--connect", nowhere, "--device-id", "d0", "--prefork",
                          "0", "--kernels", "python", *chain.cert_options("d0", "device"))
    for node in (gateway, device):
        node.wait_for_log(rf"no link to the broker at {nowhere} after 5 s: its host name "
                          r"'cellbus-broker.invalid' does not resolve \(.*\): a typo in the "
                          "endpoint")


def test_a_second_device_with_a_taken_id_is_told_to_check_it(chain: Chain) -> None:
    """Tests that a device started with the --device-id of a device already registered (a
    unit file copied to a second host), which the broker's socket does not hear, names its
    --device-id among what to check, not --key-file alone."""
    chain.start_broker()
    chain.start_device("--prefork", "0", "--kernels", "python", name="d1")
    twin = chain._start("device", "--connect", chain.device_ep, "--device-id", "d1",
                        "--prefork", "0", "--kernels", "python",
                        *chain.cert_options("d1", "device"))
    twin.wait_for_log(r"no word from the broker for \d+ s: .*is its --key-file the same as "
                      r"this device's, and is no other device running with --device-id d1\?")


def test_an_inproc_connection_is_not_watched_as_a_link(key: bytes) -> None:
    """Tests a node's inproc:// connect (the broker's feed monitor, with --curve-dir): no
    link watch, which waited for a handshake inproc never makes and logged "no link to the
    broker at inproc://cellbus-feed-... after 5 s" at every start of a TCP broker. A tcp://
    connect is still watched."""
    import asyncio

    import zmq

    from protocol.node import Node
    from protocol.wire import Session

    async def links() -> list[str]:
        node = Node(Session(key))
        node.insecure = True
        try:
            node.socket(zmq.PAIR, connect="inproc://cellbus-feed-test")
            node.socket(zmq.DEALER, connect=f"tcp://127.0.0.1:{free_port()}")
            return [link.endpoint for link in node.links]
        finally:
            for task in list(node._tasks):
                task.cancel()
            for sock in node._sockets:
                sock.close(0)
            node.ctx.term()

    assert [e.split(":")[0] for e in asyncio.run(links())] == ["tcp"]


def test_a_broker_that_goes_silent_on_a_link_it_answered_on_is_not_blamed_on_keys(
        chain: Chain) -> None:
    """Tests that a device whose broker answered on its link, then went silent (stopped with
    SIGSTOP: a frozen or overloaded broker, or a network that carries nothing while the TCP
    connection stays up), says so, not "the broker does not take what this device signs: is
    its --key-file the same ... --device-id": the broker took what it signed on this very
    link, so its --key-file and --device-id are right, and the operator was sent to them."""
    broker = chain.start_broker()
    device = chain.start_device()
    chain.start_gateway()
    assert chain.evaluate("u/ws/1", "print(1)")[0] == 202
    assert chain.wait_done("u/ws/1")["status"] == "done"
    os.kill(broker.proc.pid, signal.SIGSTOP)
    try:
        line = device.wait_for_log(r"no word from the broker for .*").group(0)
    finally:
        os.kill(broker.proc.pid, signal.SIGCONT)
    assert "--key-file" not in line and "--device-id" not in line, line
    assert f"answered on this device's link to it at {chain.device_ep}" in line, line


def test_a_gateway_without_its_output_feed_is_not_ready(chain: Chain) -> None:
    """Tests that a gateway whose --subscribe link (the broker's output feed) is not up,
    while its requests reach the broker, answers /ready 503 naming --subscribe, and that
    ``cellbus status`` says so of it, with the same verdict (exit status 3). Its
    WebSockets got no output and its long polls waited their whole time, while /ready said
    ready, so a load balancer kept sending clients to it."""
    chain.start_broker()
    chain.start_device()
    nowhere = f"tcp://127.0.0.1:{free_port()}"
    gateway = chain._start("gateway", "--port", str(chain.port), "--broker", chain.gateway_ep,
                           "--subscribe", nowhere, *chain.cert_options("gateway", "gateway"))
    gateway.wait_for_log(rf"link to the broker at {chain.gateway_ep} is up")
    status, doc = ready(chain)
    assert status == 503, doc
    assert any(p.startswith(f"output feed: no link to it at {nowhere}") and "--publish-bind"
               in p for p in doc["problems"]), doc
    name = f"{socket.gethostname()}:{chain.port}"
    deadline = time.monotonic() + 15
    while f"gateway {name}: alive" not in (text := chain_status(chain)).stdout:
        assert time.monotonic() < deadline, text.stdout + text.stderr
    assert re.search(rf"^gateway {re.escape(name)}: alive, NO OUTPUT FEED \(its --subscribe",
                     text.stdout, re.M), text.stdout
    assert text.returncode == 3, text.stdout + text.stderr
    assert text.stdout.splitlines()[-1] == "ready: no (no gateway with its output feed)"


def test_a_client_gone_during_its_handshake_is_not_blamed_on_keys(chain: Chain) -> None:
    """Tests that a connection whose client went away during the CURVE handshake (a device or
    gateway that gave up waiting on a broker that was stopped 20 s: their reconnects waited
    in the kernel's queue, and the broker read them on waking, long closed) is not logged as
    a wrong --broker-key, nor listed by status as refused. Before, the broker said "a CURVE
    handshake on the device port failed: a device whose --broker-key is not this broker's
    broker.key ..." and status listed "REFUSED on the device port" for an hour."""
    broker = chain.start_broker()
    for _ in range(2):  # a greeting begun, then closed
        with socket.create_connection(port_of(chain.device_ep), 5) as gone:
            gone.sendall(b"\xff" + b"\0" * 8 + b"\x7f\x03")
            time.sleep(0.1)
    broker.wait_for_log(r"its connection ended before any key was tried")
    assert "--broker-key is not" not in broker.log, broker.log
    status = chain_status(chain)
    assert "REFUSED" not in status.stdout, status.stdout

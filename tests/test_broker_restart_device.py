"""A device whose broker is restarted (an upgrade: SIGTERM, then a start on the same store)
is heard by the new broker over the link it makes by itself, and keeps it: it does not take
the new broker for silent before it could answer, connect again, and so miss heartbeats."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager


from harness import Chain, FakeDevice, free_port, until


def missed_heartbeats(port: int, device: str) -> float:
    """The broker's cellbus_device_heartbeats_missed_total for ``device``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    found = re.search(rf'^cellbus_device_heartbeats_missed_total{{device="{device}"}} (\S+)$',
                      text, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_device_keeps_the_link_it_made_to_a_restarted_broker(chain: Chain) -> None:
    """Tests that once a restarted broker's port takes the device's link again, the device
    waits for the broker's word on that link, and the broker misses none of its heartbeats.
    Before, the device's first heartbeat tick after the link came up took the broker for
    silent (it had had no time to answer), dropped the new connection and made another
    ('is up but the broker is silent; connecting again'), and the broker counted a missed
    heartbeat (cellbus_device_heartbeats_missed_total 1) at each restart.
    Also that the broker's going away is one WARNING of the device ('no word from the broker
    ... no link to it at ...'); before, its link's 'no link to the broker ... after 5 s'
    followed a second later and said the same cause again (ops4's report); and that the
    gateway's three links say each of their two lines once, together."""
    metrics = free_port()
    broker = chain.start_broker("--metrics-port", str(metrics))
    chain.start_gateway()
    device = chain.start_device(name="dev")
    assert chain.evaluate("u/ws/1", "print(1)")[0] == 202
    assert chain.wait_done("u/ws/1")["status"] == "done"
    broker.stop()
    device.wait_for_log(r"device dev: no word from the broker .*no link to it at")
    # The gateway's links were lost with the device's: its line comes when the device's would
    assert chain.gateway is not None
    chain.gateway.wait_for_log(r"gateway: no link to the broker at \S+ .*after 5 s")
    # and the gateway's links (requests, output feed, big reads) say their one cause once
    # each, naming every endpoint; before, each of its links said both lines for itself
    lines = [line for line in chain.gateway.log.splitlines() if "WARNING" in line]
    assert [("lost its link" in line, "after 5 s" in line) for line in lines] == [
        (True, False), (False, True)], lines
    assert all(f"(and at {chain.publish_ep})" in line for line in lines), lines
    broker = chain.start_broker("--metrics-port", str(metrics))
    device.wait_for_log(r"device dev: the broker is back")  # (any reconnect came before)
    broker.wait_for_log(r"device dev registered")
    assert chain.evaluate("u/ws/2", "print(2)")[0] == 202
    assert chain.wait_done("u/ws/2")["status"] == "done"
    assert "connecting again" not in device.log, device.log
    # one line for the one cause (ops4's report): the device's own said the link is not up
    assert "device: no link to the broker" not in device.log, device.log
    assert until(lambda: (missed_heartbeats(metrics, "dev"),), "a scrape") == (0,)


def test_a_broker_beats_at_once_to_a_device_it_hears_first(chain: Chain, key: bytes) -> None:
    """Tests that a device heard by a broker for the first time (after the broker restarted, a
    device's heartbeat on its new link is the first word) gets the broker's heartbeat at once,
    not at the next round of heartbeats up to 1 s later (ops4's report): only on hearing the
    broker does the device take it for back, and a device whose tick came first when its link
    had been up for 1 s dropped that link as silent ('connecting again') and missed a beat."""
    chain.start_broker()
    first, second = FakeDevice(key, chain, "first"), FakeDevice(key, chain, "second")
    try:
        def beat(m: dict) -> bool:
            return bool(m["msg_type"] == "broker_heartbeat")
        first.report("device_register", capacity=1)
        for _ in range(2):  # the second is of a round: the next is a second away
            first.wait_for(beat, timeout=5)
        second.report(capacity=1)
        # the beat for it, not the next round's: a round's says how long the device was
        # unheard (the time it took, which was the test, is a loaded machine's to decide)
        heard = second.wait_for(beat, timeout=5)
        assert "unheard" not in heard["metadata"]["cellbus"], heard
    finally:
        first.close()
        second.close()


def test_a_broker_restarted_twice_is_not_taken_for_an_mtu_black_hole(chain: Chain) -> None:
    """Tests that a device and a gateway whose broker is restarted twice within 30 s (an
    operator trying options) do not name an MTU black hole: each loss was the broker going
    away (its port refused the reconnects meanwhile), not a link that breaks under traffic.
    Before, two losses within 30 s of each link's coming up were 'lost again and again ...
    most likely an MTU black hole ... set sysctl net.ipv4.tcp_mtu_probing=1'."""
    broker = chain.start_broker()
    gateway = chain.start_gateway()
    device = chain.start_device(name="dev")
    for turn in (1, 2):
        broker.stop()
        until(lambda turn=turn: device.log.count("device dev: no word from the broker") == turn,
              "the device to miss its broker")
        broker = chain.start_broker()
        until(lambda turn=turn: device.log.count("the broker is back") == turn,
              "the device back")
        until(lambda turn=turn: gateway.log.count(f"{chain.gateway_ep} is up again") == turn,
              "the gateway's link up again")
    assert chain.evaluate("u/ws/1", "print(1)")[0] == 202
    assert chain.wait_done("u/ws/1")["status"] == "done"
    for node in (device, gateway):
        assert "black hole" not in node.log, node.log


def test_a_device_frozen_then_its_broker_restarted_names_no_mtu_black_hole(
        chain: Chain) -> None:
    """Tests that a device frozen (SIGSTOP) past the broker's expiry, then its broker
    restarted within 30 s, names no MTU black hole: the broker took it for lost, and its link
    was not cut meanwhile (the broker sends no ZeroMQ heartbeats of its own: libzmq 4.3.5
    aborted on one due on a connection it had failed to read), so the one loss the device
    sees is the broker going away. Before, a link cut by the broker's heartbeats and the
    restart, two losses within 30 s of coming up, were taken for a link that breaks under
    traffic."""
    broker = chain.start_broker()
    device = chain.start_device(name="dev")
    os.killpg(device.proc.pid, signal.SIGSTOP)
    try:
        broker.wait_for_log(r"device dev is lost", timeout=20)
    finally:
        os.killpg(device.proc.pid, signal.SIGCONT)
    broker.wait_for_log(r"device dev registered", timeout=20, nth=2)  # heard again
    assert "lost its link to the broker" not in device.log, device.log
    broker.stop()
    until(lambda: device.log.count("lost its link to the broker") == 1, "the loss")
    broker = chain.start_broker()
    until(lambda: device.log.count("is up again") == 1, "the device's link up again", 20)
    assert "black hole" not in device.log, device.log


@contextmanager
def cutting_relay(target: int, cut_after: float) -> Iterator[int]:
    """A TCP relay on a free port to 127.0.0.1:``target`` that takes every connection and
    cuts each ``cut_after`` seconds after it began (a link that breaks while its far end
    stays there, as under an MTU black hole); yields its port."""
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    stop = threading.Event()

    def pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while chunk := a.recv(65536):
                b.sendall(chunk)
        except OSError:
            pass

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                near, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            far = socket.create_connection(("127.0.0.1", target))
            for a, b in ((near, far), (far, near)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()
            timer = threading.Timer(cut_after, lambda n=near, f=far: [s.close() for s in (n, f)])
            timer.daemon = True
            timer.start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        listener.close()
        thread.join(5)


def test_a_link_cut_soon_after_each_reconnect_is_still_named(chain: Chain) -> None:
    """Tests (a guard for the words above) that a device whose link is cut a second after
    each reconnect, while the broker's port takes every reconnect at once, still logs that
    its link is lost again and again within 30 s of coming up (the MTU black hole words)."""
    chain.start_broker()
    target = int(chain.device_ep.rsplit(":", 1)[1])
    with cutting_relay(target, cut_after=1.0) as port:
        device = chain._start("device", "--connect", f"tcp://127.0.0.1:{port}", "--device-id",
                              "dev", "--prefork", "0", "--kernels", "python",
                              *chain.cert_options("dev", "device"))
        device.wait_for_log(r"is lost again and again within 30 s of coming up", timeout=20)
        device.kill_group()


def test_a_device_that_was_frozen_does_not_blame_the_key(chain: Chain) -> None:
    """Tests that a device frozen (SIGSTOP) past the broker's expiry, when it goes on, says
    nothing of --key-file: the broker's heartbeats wait unread on its link, so it was this
    device that did not listen. Before, it logged 'no word from the broker for 10 s: its
    link ... is up, so the broker does not take what this device signs: is its --key-file
    the same ...?' and, at once, 'the broker is back'."""
    broker = chain.start_broker()
    device = chain.start_device(name="dev")
    os.killpg(device.proc.pid, signal.SIGSTOP)
    try:
        broker.wait_for_log(r"device dev is lost")
    finally:
        os.killpg(device.proc.pid, signal.SIGCONT)
    until(lambda: broker.log.count("device dev registered") == 2, "dev registered again")
    chain.start_gateway()
    assert chain.evaluate("u/ws/1", "print(1)")[0] == 202  # its lines before are read then
    assert chain.wait_done("u/ws/1")["status"] == "done"
    assert "--key-file" not in device.log, device.log

"""CURVE on the bus's TCP links: only the keys the broker holds get in, each on its role's
ports; a node never goes on TCP in clear unless told to; a revoked key is kept out from its
next connection on.
(Every other chain test runs over CURVE too: tests/harness.py gives each node its keys.)"""

from __future__ import annotations


import zmq

from harness import BusClient, Chain, NodeProcess, free_port
from protocol import msgtypes as mt
from protocol.curve import make_certificate


def quiet_for(sock: zmq.Socket, seconds: float) -> bool:
    """True if nothing arrives on ``sock`` for ``seconds``."""
    return not sock.poll(int(seconds * 1000))


def test_only_keys_of_the_right_role_reach_the_broker(chain: Chain, key: bytes) -> None:
    """Tests that a client with the deployment key but no CURVE key, or a stranger's CURVE
    key, gets nothing from any port: no output from the feed, no answer on the gateway port,
    no place among the devices; and that a device's key does not open the gateway port."""
    broker = chain.start_broker()
    for port in ("gateways", "devices"):  # its bind lines say the ports are encrypted
        broker.wait_for_log(rf"bound ROUTER for {port} on tcp://127.0.0.1:\d+ \(CURVE: "
                            r"encrypted\)")
    chain.start_device()
    chain.start_gateway()
    assert chain.evaluate("u/ws/1", "print('warm')")[0] == 202
    assert chain.wait_done("u/ws/1")["status"] == "done"

    ctx = zmq.Context()
    plain_sub = ctx.socket(zmq.SUB)
    plain_sub.subscribe(b"")
    plain_sub.connect(chain.publish_ep)
    stranger = chain.keys_dir / "elsewhere"
    make_certificate(stranger, "broker", "broker")
    make_certificate(stranger, "mallory", "gateway")
    keyed_sub = ctx.socket(zmq.SUB)  # a well-formed key the broker never accepted
    keyed_sub.curve_secretkey, keyed_sub.curve_publickey = (
        (stranger / "mallory.key_secret").read_bytes().split(b'secret-key = "')[1][:40],
        (stranger / "mallory.key").read_bytes().split(b'public-key = "')[1][:40])
    keyed_sub.curve_serverkey = (chain.keys_dir / "broker.key").read_bytes().split(
        b'public-key = "')[1][:40]
    keyed_sub.subscribe(b"")
    keyed_sub.connect(chain.publish_ep)
    as_gateway = BusClient(key, connect=chain.gateway_ep)  # signed, but no CURVE key
    device_key_on_gateway_port = BusClient(key, connect=chain.gateway_ep,
                                           keys=chain.client_keys("device0", "device"))
    try:
        assert chain.evaluate("u/ws/2", "print('the diary')")[0] == 202
        assert chain.wait_done("u/ws/2")["status"] == "done"
        for client in (as_gateway, device_key_on_gateway_port):
            ask = client.session.msg(mt.BROKER_STATUS_REQUEST, {})
            try:  # queued, or refused at once for want of a connection: no answer either way
                client.sock.send_multipart(client.session.serialize(ask), zmq.NOBLOCK)
            except zmq.Again:
                pass
        assert quiet_for(plain_sub, 1.0) and quiet_for(keyed_sub, 0.1)
        assert as_gateway.recv(timeout=1.0) is None
        assert device_key_on_gateway_port.recv(timeout=0.1) is None
    finally:
        for client in (as_gateway, device_key_on_gateway_port):
            client.close()
        plain_sub.close(0)
        keyed_sub.close(0)
        ctx.term()
    assert chain.broker is not None
    chain.broker.wait_for_log(r"refused a CURVE client on the gateway port")


def test_a_revoked_gateway_is_kept_out_without_a_broker_restart(chain: Chain) -> None:
    """Tests that `bin/cellbus cert --revoke` shuts a gateway's key out from its next
    connection on, while the broker runs on and a gateway with a key still allowed is
    served by the same device."""
    chain.start_broker()
    chain.start_device()
    gateway = chain.start_gateway()
    assert chain.evaluate("u/ws/1", "print(1)")[0] == 202
    assert chain.wait_done("u/ws/1")["status"] == "done"
    revoke = NodeProcess("cert", "--revoke", "gateway", "--dir", str(chain.keys_dir))
    chain.nodes.append(revoke)
    assert revoke.proc.wait(30) == 0, revoke.log
    gateway.stop()
    chain.start_gateway(linked=False)  # the revoked key again: its handshake is refused
    assert chain.broker is not None
    chain.broker.wait_for_log(r"refused a CURVE client on the gateway port")
    status, body = chain.evaluate("u/ws/2", "print(2)")
    assert status == 503, (status, body)
    chain.port = free_port()  # a gateway with a key still allowed: the device serves on
    chain.start_gateway(name="gateway2")
    assert chain.evaluate("u/ws/3", "print(3)")[0] == 202
    assert chain.wait_done("u/ws/3")["output"]["stdout_0"]["content"] == "3\n"
    assert chain.broker.proc.poll() is None


def test_tcp_without_keys_is_refused_in_one_line(key_file) -> None:
    """Tests that each node given a tcp:// endpoint and no CURVE keys refuses to start,
    saying which options to give, and that --insecure-bus lets it start with a warning."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    store = f"sqlite:///{key_file.parent / 'refused.db'}"
    for argv in (["broker", "--gateway-bind", endpoint, "--store", store],
                 ["device", "--connect", endpoint],
                 ["gateway", "--broker", endpoint, "--subscribe", endpoint,
                  "--port", str(free_port())]):
        node = NodeProcess(*argv, "--key-file", str(key_file))
        try:
            assert node.proc.wait(30) == 2, node.log
            node.wait_for_log(r"is a TCP endpoint, and the bus is encrypted there: give "
                              r"--(curve-dir|curve-key and --broker-key)")
            assert "Traceback" not in node.log
        finally:
            node.kill_group()
    insecure = NodeProcess("device", "--connect", endpoint, "--key-file", str(key_file),
                           "--insecure-bus")
    try:
        insecure.wait_for_log(r"--insecure-bus: tcp://127.0.0.1:\d+ carries code and output "
                              r"in clear")
        # and that its replay protection is in memory only, which CURVE does not need
        insecure.wait_for_log(r"a message captured there can be sent again: this node refuses "
                              r"a replay only while it remembers the signature \(the last "
                              r"65536 it took, in memory: not once it has restarted\)")
    finally:
        insecure.stop()
        insecure.kill_group()
    clear = NodeProcess("broker", "--gateway-bind", endpoint, "--store", store, "--key-file",
                        str(key_file), "--insecure-bus")
    try:  # its bind line says so too
        clear.wait_for_log(r"bound ROUTER for gateways on tcp://127.0.0.1:\d+ \(in clear: "
                           r"--insecure-bus\)")
    finally:
        clear.stop()
        clear.kill_group()


def test_a_secret_key_given_as_the_brokers_public_one_is_refused(tmp_path, key_file) -> None:
    """Tests a device and a gateway whose --broker-key names the broker's .key_secret (it
    holds the public key too, so pyzmq reads it as one): each refuses to start in one line
    that says to give the public broker.key. Before, both ran: the broker's secret key, copied
    to their hosts, went unnoticed, and with it anyone there could pose as the broker."""
    secret = make_certificate(tmp_path / "keys", "broker", "broker")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    for name, role, argv in (
            ("gpu1", "device", ["device", "--connect", endpoint]),
            ("web1", "gateway", ["gateway", "--broker", endpoint, "--subscribe", endpoint,
                                 "--port", str(free_port())])):
        own = make_certificate(tmp_path / "keys", name, role)
        node = NodeProcess(*argv, "--curve-key", str(own), "--broker-key", str(secret),
                           "--key-file", str(key_file))
        try:
            assert node.proc.wait(30) == 2, node.log
            node.wait_for_log(rf"--broker-key {secret} holds the broker's secret key: give "
                              r"its public broker\.key")
            assert "Traceback" not in node.log
        finally:
            node.kill_group()

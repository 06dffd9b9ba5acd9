"""Who may join the bus across hosts (tests/netbed.py): a stranger's key, a revoked key, a
device's key on the gateway port and a gateway's on the device port, an impostor broker a
device is sent to by a false name, and a replayed capture of a device's connection. Each is
refused, the broker's log names who it was, and ``bin/cellbus status`` lists it (before,
the broker logged "key XXXX is not allowed there" whoever it was, and status said nothing)."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
from pathlib import Path

from harness import CELLBUS, NodeProcess, node_env
from netbed import NetChain, wait_until
from protocol.curve import make_certificate
from test_multihost import bed, output_text, run, start

__all__ = ["bed"]  # the fixture


def _status(chain: NetChain, *cert: str) -> subprocess.CompletedProcess[str]:
    """``bin/cellbus status`` from the gateway's host, with ``cert`` (a gateway's by
    default)."""
    return subprocess.run(
        [*chain.bed.wrap("gateway"), *CELLBUS, "status", "--broker", chain.gateway_ep,
         "--key-file", chain.key_file, *(cert or chain.cert_options("gateway", "gateway"))],
        capture_output=True, text=True, timeout=60, env=node_env())


def _device(chain: NetChain, name: str, secret: Path, host: str = "dev1",
            broker_key: Path | None = None, connect: str | None = None) -> NodeProcess:
    """A device on ``host`` with the key pair ``secret``: one the broker should refuse, so
    it has no drain to wait for when the test ends (--drain-timeout 0)."""
    node = NodeProcess("device", "--connect", connect or chain.device_ep, "--device-id", name,
                       "--drain-timeout", "0",
                       "--curve-key", str(secret), "--broker-key",
                       str(broker_key or chain.keys_dir / "broker.key"),
                       "--key-file", chain.key_file, wrap=chain.bed.wrap(host))
    chain.nodes.append(node)
    return node


def test_strangers_revoked_and_swapped_keys_are_refused_and_named(bed: NetChain) -> None:
    """Tests four clients the broker must turn away: a device with a key of its own making,
    one whose key was revoked (``bin/cellbus cert --revoke``), one with a gateway's key, and
    ``status`` asked with a device's key. Each is refused (no registration, status refused),
    each is named in the broker's log by what it is, and ``status`` lists each."""
    start(bed, devices=1)
    assert bed.broker is not None
    stranger = make_certificate(bed.keys_dir / "elsewhere", "intruder", "device")
    _device(bed, "intruder", stranger)
    bed.broker.wait_for_log(r"device port: key \S+, which the --curve-dir does not hold")
    old = make_certificate(bed.keys_dir, "old", "device")
    revoked = subprocess.run([*CELLBUS, "cert", "--revoke", "old", "--dir", str(bed.keys_dir)],
                             capture_output=True, text=True, timeout=60, env=node_env())
    assert revoked.returncode == 0, revoked
    _device(bed, "old", old)
    bed.broker.wait_for_log(r"device port: the key of old, revoked")
    web2 = make_certificate(bed.keys_dir, "web2", "gateway")
    swapped = _device(bed, "web2", web2)
    bed.broker.wait_for_log(r"device port: the key of gateway web2, which opens the gateway "
                            r"and feed ports only")
    swapped.wait_for_log(r"refused this node's CURVE key")
    as_device = _status(bed, *bed.cert_options("dev0", "device"))
    assert as_device.returncode == 1, as_device
    assert "refused this node's CURVE key" in as_device.stderr, as_device.stderr
    bed.broker.wait_for_log(r"gateway port: the key of device dev0, which opens the device "
                            r"port only")
    status = _status(bed)
    refused = re.findall(r"^REFUSED on the (\w+) port: (.*) \((?:once|\d+ times)", status.stdout,
                         re.M)
    whos = {(port, who.split(",")[0]) for port, who in refused}
    assert {("device", "the key of old"), ("device", "the key of gateway web2"),
            ("gateway", "the key of device dev0")} <= whos, status.stdout
    assert any(port == "device" and "does not hold" in who for port, who in refused), \
        status.stdout
    assert status.returncode == 0  # refusals inform; the broker is still ready
    for name in ("intruder", "old", "web2"):
        assert f"device {name} registered" not in bed.broker.log
    assert output_text(run(bed, "u/ws/1", "print('still')")) == "still\n"


def test_an_impostor_broker_behind_a_false_name_learns_nothing(bed: NetChain) -> None:
    """Tests a device sent by a false name (the hosts file, as a poisoned DNS answer) to an
    impostor broker with keys of its own, on another host: the device's handshake fails and
    it says its --broker-key is not the key of what listens there; the impostor only sees a
    handshake it cannot decrypt and never hears the device register."""
    start(bed, devices=1)
    impostor_keys = bed.keys_dir.parent / "impostor"
    make_certificate(impostor_keys, "broker", "broker")
    impostor_at = bed.bed.address("dev1")
    impostor = NodeProcess(
        "broker", "--key-file", bed.key_file, "--curve-dir", str(impostor_keys), "--store",
        f"sqlite:///{bed.keys_dir.parent / 'impostor.db'}",
        "--gateway-bind", f"tcp://{impostor_at}:5555",
        "--device-bind", f"tcp://{impostor_at}:5556",
        "--publish-bind", f"tcp://{impostor_at}:5557", wrap=bed.bed.wrap("dev1"))
    bed.nodes.append(impostor)
    impostor.wait_for_log(r"broker started")
    bed.bed.names({"hub": impostor_at})
    cert = bed.cert_options("dev2", "device")
    fooled = _device(bed, "dev2", Path(cert[1]), host="gateway", connect="tcp://hub:5556")
    fooled.wait_for_log(r"CURVE handshake with the broker at tcp://hub:5556 failed: "
                        r"--broker-key is not the public key", timeout=30)
    impostor.wait_for_log(r"a CURVE handshake on the device port failed")
    assert "registered" not in impostor.log


def test_a_replayed_capture_of_a_device_connection_is_refused(bed: NetChain) -> None:
    """Tests an attacker between a device and the broker who records every byte the device
    sends (a relay in the middle) and plays them again to the broker on a connection of its
    own: the broker refuses the replayed handshake (logged, and listed by status), the
    device does not register twice, and a cell's output is there once."""
    start(bed, devices=1)
    assert bed.broker is not None
    relay = _Relay(bed.bed.client, (bed.bed.address("broker"), NetChain.DEVICE_PORT))
    try:
        cert = bed.cert_options("dev2", "device")
        device = _device(bed, "dev2", Path(cert[1]), host="gateway",
                         connect=f"tcp://{bed.bed.client}:{relay.port}")
        bed.broker.wait_for_log(r"device dev2 registered")
        wait_until(lambda: len(relay.recorded) > 1000, 30, "the device's traffic recorded")
        device.stop(timeout=20)
        replay = socket.create_connection((bed.bed.address("broker"), NetChain.DEVICE_PORT), 10)
        try:
            replay.sendall(bytes(relay.recorded))
            bed.broker.wait_for_log(r"a CURVE handshake on the device port failed")
        finally:
            replay.close()
    finally:
        relay.close()
    assert len(re.findall(r"device dev2 registered", bed.broker.log)) == 1
    status = _status(bed)
    assert re.search(r"^REFUSED on the device port: a handshake it could not decrypt",
                     status.stdout, re.M), status.stdout
    assert output_text(run(bed, "u/ws/1", "print('once')")) == "once\n"


class _Relay:
    """A TCP relay on ``address`` (a free port) to ``target``, for one connection, keeping
    every byte the client sends in :attr:`recorded`."""

    def __init__(self, address: str, target: tuple[str, int]) -> None:
        self.listener = socket.create_server((address, 0))
        self.port = self.listener.getsockname()[1]
        self.target = target
        self.recorded = bytearray()
        self._socks: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        server = socket.create_connection(self.target, 10)
        self._socks += [client, server]
        threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()
        self._pipe(client, server, True)

    def _pipe(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while data := src.recv(65536):
                if record:
                    self.recorded += data
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        for sock in self._socks:
            sock.close()

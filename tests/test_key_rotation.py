"""Rotating keys and certificates on a running deployment across machines (README's
"Rotating keys and certificates"), each while a cell streams output, which must come whole:

- the bus key: ``cellbus key --next``, ``--switch``, ``--retire``, each copied to every host
  and reloaded there with SIGHUP. Before, a node read its ``--key-file`` only at start and
  SIGHUP killed it: the key could be changed only by stopping every node;
- a device's and a gateway's certificate: ``cellbus cert --rotate NAME``, SIGHUP, ``cert
  --retire NAME``;
- the broker's certificate: ``cellbus cert --rotate broker``, ``broker.next.key`` beside
  the clients' ``--broker-key``, a broker restart.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from cellbus.__main__ import key as key_command
from harness import NodeProcess
from protocol.config import generate_key, load_keys
from protocol.curve import (listing, make_certificate, retire_previous, revoke,
                            rotate_certificate)
from protocol.errors import ConfigError, ProtocolError
from protocol.rekey import rotate
from protocol.wire import Session
from rotation_bed import Bed, cellbus, dropped, hang_up

RELOADED = r"reloaded its --key-file"


def test_the_bus_key_rotates_while_a_cell_streams_and_the_old_one_is_refused_after(
        tmp_path: Path, nodes: list[NodeProcess]) -> None:
    """Tests the three steps, each reloaded on hub, gpu and web in turn (the broker first: the
    order an operator's loop over hosts might take), with a quick cell run after each: the
    streaming cell's lines all come, once each, in order; no node dropped a message; each
    node logs what it signs with. After the rotation a device that still has the old key is
    not heard, and the broker's line says it signed with a retired bus key."""
    bed = Bed(tmp_path, nodes)
    broker, device, gateway = bed.up()
    old = tmp_path / "old.key"  # kept, for a node that missed the rotation
    shutil.copyfile(bed.file("hub", "bus.key"), old)
    bed.stream("u/ws/stream")
    for n, step in enumerate(("--next", "--switch", "--retire"), start=1):
        if step == "--next":  # the command once; in-process after (a start costs ~1 s)
            made = cellbus("key", step, str(bed.file("hub", "bus.key")))
            assert made.returncode == 0, made.stderr
        else:
            rotate(bed.file("hub", "bus.key"), step.removeprefix("--"))
        for host in ("gpu", "web"):
            bed.copy("bus.key", host)
        for node in (broker, device, gateway):
            hang_up(node, RELOADED, n)
        bed.run(f"u/quick/{n}", n)
        bed.wait_lines("u/ws/stream", 3)
    lines = bed.finish("u/ws/stream")
    assert len(lines) > 10
    assert dropped(broker, device, gateway) == []
    retired = [line for line in device.log.splitlines() if RELOADED in line][-1]
    assert "also accepts" not in retired, retired
    for node in (broker, device, gateway):
        assert node.proc.poll() is None, node.log

    stale = NodeProcess("device", "--connect", bed.chain.device_ep, "--device-id", "gpu2",
                        "--prefork", "0", "--drain-timeout", "0", "--key-file", str(old),
                        *bed.certificate("gpu", "gpu2", "device"))
    nodes.append(stale)
    broker.wait_for_log(r"dropped a message: signature: signed with a bus key this node "
                        r"retired .* send it SIGHUP")
    assert "device gpu2 registered" not in broker.log

    # A key file that cannot be read on SIGHUP (emptied: a copy that failed half way) is
    # logged and changes nothing: the node goes on, and cells still run.
    bed.file("gpu", "bus.key").write_bytes(b"")
    hang_up(device, r"device got SIGHUP but keeps its keys: the --key-file \S+ is empty", 1)
    bed.run("u/quick/4", 4)
    assert device.proc.poll() is None


def test_a_device_and_a_gateway_certificate_rotate_while_a_cell_streams(
        tmp_path: Path, nodes: list[NodeProcess]) -> None:
    """Tests ``cellbus cert --rotate``, the node's SIGHUP, then ``cert --retire``, for the
    device (which holds the streaming cell's session) and then the gateway (which reads its
    output): the cell's lines all come, once each, in order, and cells run after each step;
    neither node is refused or cut off. After the rotation, a node with the old certificate
    is refused, and the broker's line names it as gpu1's previous key, retired. (Before, a
    key could be replaced only by revoking it: the device was cut off, its running cells
    ended with DeviceLost, and it had to be restarted with its new key.)"""
    bed = Bed(tmp_path, nodes)
    broker, device, gateway = bed.up()
    keys = str(bed.chain.keys_dir)
    old = tmp_path / "gpu1.old_secret"
    shutil.copyfile(bed.file("gpu", "gpu1.key_secret"), old)
    bed.stream("u/ws/stream")
    for n, (node, name, host) in enumerate(((device, "gpu1", "gpu"), (gateway, "web1", "web"))):
        if node is device:  # the commands once; in-process after (a start costs ~1 s)
            made = cellbus("cert", "--rotate", name, "--dir", keys)
            assert made.returncode == 0, made.stderr
        else:
            rotate_certificate(keys, name)
        bed.copy(f"{name}.key_secret", host, bed.chain.keys_dir / f"{name}.key_secret")
        hang_up(node, rf"reloaded its CURVE certificate \S+/{name}.key_secret", 1)
        if node is device:
            broker.wait_for_log(r"device 'gpu1' speaks with the new key of certificate gpu1")
        bed.run(f"u/quick/{2 * n}", 2 * n)
        bed.wait_lines("u/ws/stream", 3)
        if node is device:
            retired = cellbus("cert", "--retire", name, "--dir", keys)
            assert retired.returncode == 0, retired.stderr
        else:
            assert retire_previous(keys, name)
        bed.run(f"u/quick/{2 * n + 1}", 2 * n + 1)
        bed.wait_lines("u/ws/stream", 3)
    bed.finish("u/ws/stream")
    assert dropped(broker, device, gateway) == []

    stale = NodeProcess("device", "--connect", bed.chain.device_ep, "--device-id", "gpu1",
                        "--prefork", "0", "--drain-timeout", "0", "--key-file",
                        str(bed.file("gpu", "bus.key")), "--curve-key", str(old),
                        "--broker-key", str(bed.file("gpu", "broker.key")))
    nodes.append(stale)
    broker.wait_for_log(r"refused a CURVE client on the device port: the previous key of "
                        r"gpu1, retired \(cert --retire\)")
    stale.wait_for_log(r"the broker at \S+ refused this node's CURVE key")
    # By now the broker has looked at its key folders since the last --retire (every 0.5 s):
    # the connections the nodes left when they reloaded are no revoked peers.
    assert not re.search(r"was revoked|cut \d+ feed|DeviceLost", broker.log), broker.log
    for node in (broker, device, gateway):
        assert node.proc.poll() is None, node.log


def test_the_broker_certificate_rotates_across_a_restart_and_its_clients_follow(
        tmp_path: Path, nodes: list[NodeProcess]) -> None:
    """Tests ``cellbus cert --rotate broker``: its new public key is copied to the device's
    and the gateway's hosts as ``broker.next.key``, and the broker is restarted with the new
    pair while a cell streams. The device and the gateway, whose handshakes with the old key
    now fail, connect with the new one; the cell's lines all come, once each, and another
    cell runs. A node given only the old broker key is told that its --broker-key is not the
    broker's. (Before, a node knew one broker key, read at start: every device and gateway
    had to be restarted with the new one while the broker was down.)"""
    bed = Bed(tmp_path, nodes)
    broker, device, gateway = bed.up()
    keys = bed.chain.keys_dir
    bed.stream("u/ws/stream")
    made = cellbus("cert", "--rotate", "broker", "--dir", str(keys))
    assert made.returncode == 0, made.stderr
    for host in ("gpu", "web"):
        bed.copy("broker.next.key", host, keys / "broker.key")
    assert broker.stop() == 0
    broker = bed.start_broker()
    for node in (device, gateway):
        node.wait_for_log(r"the broker did not take the key it was connecting with; trying "
                          r"the one in \S+/broker.next.key")
    bed.run("u/quick/1", 1)
    for node in (device, gateway):  # the switch is said once, as a WARNING, not an ERROR
        assert "is not the public key of the broker" not in node.log, node.log
    # A SIGHUP before broker.next.key was moved over broker.key keeps the key in use.
    hang_up(device, r"device got SIGHUP: its --key-file \S+ is unchanged", 1)
    bed.run("u/quick/2", 2)
    bed.wait_lines("u/ws/stream", 3)
    bed.finish("u/ws/stream")
    assert "DeviceLost" not in broker.log
    assert "reloaded its CURVE certificate" not in device.log, device.log

    stale = NodeProcess("device", "--connect", bed.chain.device_ep, "--device-id", "gpu2",
                        "--prefork", "0", "--drain-timeout", "0",
                        "--key-file", str(bed.file("gpu", "bus.key")),
                        *bed.certificate("gpu", "gpu2", "device")[:2],
                        "--broker-key", str(keys / "broker.previous.key"))
    nodes.append(stale)
    stale.wait_for_log(r"--broker-key is not the public key of the broker listening there")


def test_a_key_is_accepted_in_its_window_and_named_when_retired() -> None:
    """Tests the wire's side in-process: a Session that accepts the old key verifies what a
    node not yet reloaded signs; once it retires the key, such a message is refused as
    signed with a retired key, and a stranger's as not matching."""
    old, new = Session(b"old key"), Session(b"new key", accept=[b"old key"])
    new.deserialize(old.serialize(old.msg("status")))
    new.rekey(b"new key")
    with pytest.raises(ProtocolError, match="signed with a bus key this node retired"):
        new.deserialize(old.serialize(old.msg("status")))
    stranger = Session(b"another")
    with pytest.raises(ProtocolError, match="signature does not match"):
        new.deserialize(stranger.serialize(stranger.msg("status")))


def test_rotation_steps_out_of_order_are_refused_and_leave_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Tests ``rotate``: --switch or --retire before --next, and --next twice, are refused
    and change nothing; the steps in order leave one key, the new one, mode 0600."""
    path = tmp_path / "bus.key"
    generate_key(path)
    first = path.read_bytes()
    for step in ("switch", "retire"):
        with pytest.raises(ConfigError):
            rotate(path, step)
    assert path.read_bytes() == first
    rotate(path, "next")
    with pytest.raises(ConfigError):
        rotate(path, "next")
    key, accept = load_keys(path)
    assert key == first.strip() and len(accept) == 1
    rotate(path, "switch")
    rotate(path, "retire")
    assert load_keys(path) == (accept[0], ())
    assert path.stat().st_mode & 0o777 == 0o600
    assert key_command(["--next"]) == 2  # no path: the usage, not "unknown option"
    assert "cellbus key --next PATH" in capsys.readouterr().err


def test_revoking_a_name_in_rotation_revokes_its_old_key_too(tmp_path: Path) -> None:
    """Tests that ``cert --revoke NAME`` between ``--rotate NAME`` and ``--retire NAME``
    takes both of NAME's keys out: the old one stayed accepted, as NAME.previous, and a
    second broker rotation before the first is retired is refused."""
    keys = tmp_path / "keys"
    make_certificate(keys, "broker", "broker")
    make_certificate(keys, "gpu1", "device")
    rotate_certificate(keys, "gpu1")
    assert sorted(listing(keys)) == [("device", "gpu1"), ("device", "gpu1.previous")]
    revoke(keys, "gpu1")
    assert listing(keys) == []
    rotate_certificate(keys, "broker")
    with pytest.raises(ConfigError, match="--retire broker"):
        rotate_certificate(keys, "broker")

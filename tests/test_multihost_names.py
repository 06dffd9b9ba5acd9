"""cellbus across hosts by name and over IPv6 (tests/netbed.py): the README's
``--connect tcp://hub:5556``, with names a hosts file of each host resolves as DNS would; IPv6
addresses in brackets and a name with an IPv6 address only; a broker restarted on another
address its name now points to, which devices and gateways follow by themselves."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from harness import CELLBUS, node_env
from netbed import NetChain, wait_until
from test_multihost import bed, output_text, run

__all__ = ["bed"]  # the fixture


def _endpoints(chain: NetChain, host: str) -> None:
    """The chain's broker endpoints at ``host`` (a name, or an address; IPv6 in brackets)."""
    chain.gateway_ep = f"tcp://{host}:{NetChain.GATEWAY_PORT}"
    chain.device_ep = f"tcp://{host}:{NetChain.DEVICE_PORT}"
    chain.publish_ep = f"tcp://{host}:{NetChain.PUBLISH_PORT}"


def _status(chain: NetChain, host: str) -> subprocess.CompletedProcess[str]:
    """``bin/cellbus status`` on ``host``, as the gateway."""
    return subprocess.run(
        [*chain.bed.wrap(host), *CELLBUS, "status", "--broker", chain.gateway_ep,
         "--key-file", chain.key_file, *chain.cert_options("gateway", "gateway")],
        capture_output=True, text=True, timeout=60, env=node_env())


def test_ipv6_addresses_and_an_ipv6_only_name(bed: NetChain) -> None:
    """Tests the broker bound to its IPv6 address, a device connecting to that address in
    brackets and the gateway to a name with an IPv6 address only: cells run on both devices,
    each output once, and status answers over IPv6. Before, the broker stopped at its bind
    ("No such device") and a client never connected."""
    broker6 = bed.bed.address6("broker")
    bed.bed.names({"hub6": broker6})
    _endpoints(bed, f"[{broker6}]")
    broker = bed.start_broker()
    assert f"on tcp://[{broker6}]:{NetChain.DEVICE_PORT} (CURVE: encrypted)" in broker.log
    bed.start_device()
    _endpoints(bed, "hub6")
    bed.start_device()
    bed.start_gateway("--auth", "none", "--allow-anonymous")
    assert output_text(run(bed, "u/a/1", "print(6 * 7)")) == "42\n"
    assert output_text(run(bed, "u/b/1", "print('b')")) == "b\n"
    status = _status(bed, "gateway")
    assert status.returncode == 0 and "ready: yes" in status.stdout, status
    assert re.search(r"^dev0 +yes", status.stdout, re.M), status.stdout
    assert re.search(r"^dev1 +yes", status.stdout, re.M), status.stdout


def test_a_broker_restarted_on_a_new_address_its_name_follows(bed: NetChain) -> None:
    """Tests the README's names (``tcp://hub:5556``): the broker host gets another address,
    the name ``hub`` points to it and the broker restarts there; the device and the gateway
    find it by themselves, the device registers again, and each cell's output, before and
    after, is there once."""
    bed.bed.names({"hub": bed.bed.address("broker")})
    _endpoints(bed, "hub")
    bed.start_broker()
    bed.start_device()
    bed.start_gateway("--auth", "none", "--allow-anonymous")
    assert output_text(run(bed, "u/ws/1", "x = 1\nprint('before')")) == "before\n"
    assert bed.broker is not None
    bed.broker.stop(timeout=20)
    moved = bed.bed.add_address("broker", 101)
    bed.bed.names({"hub": moved})
    broker = bed.start_broker()
    assert f"on tcp://{moved}:{NetChain.DEVICE_PORT}" in broker.log, broker.log
    broker.wait_for_log(r"device dev0 registered", timeout=40)
    wait_until(lambda: bed.evaluate("u/ws/2", "print('after')")[0] == 202, 30,
               "the gateway reaches the moved broker")
    assert output_text(bed.wait_done("u/ws/2", 60)) == "after\n"
    assert output_text(bed.update("u/ws/1")[1]) == "before\n"


@pytest.mark.parametrize("host", ["192.0.2.7", "no-such-host.invalid"])
def test_a_bind_to_an_address_of_another_machine_says_so(tmp_path: Path, key_file: Path,
                                                         host: str) -> None:
    """Tests a broker bound to an address this machine does not have, or to a name that does
    not resolve: it stops in one line that says so, not libzmq's "No such device"."""
    from protocol.curve import make_certificate
    make_certificate(tmp_path / "keys", "broker", "broker")
    done = subprocess.run(
        [*CELLBUS, "broker", "--key-file", str(key_file), "--curve-dir", str(tmp_path / "keys"),
         "--store", f"sqlite:///{tmp_path / 'c.db'}", "--gateway-bind", f"tcp://{host}:5555"],
        capture_output=True, text=True, timeout=60, env=node_env())
    assert done.returncode == 2, done
    assert f"tcp://{host}:5555: its host is not an address of this machine" in done.stderr, \
        done.stderr
    assert "Traceback" not in done.stderr


def test_which_endpoints_take_ipv6() -> None:
    """Tests the rule of protocol/endpoints.py without the bed: IPv6 for an address in
    brackets and for ``*`` in a bind (both families), not for IPv4 addresses, names with
    IPv4 addresses (``localhost``: a broker bound to 0.0.0.0 must still be reached) or
    other transports."""
    from protocol.endpoints import wants_ipv6
    assert wants_ipv6("tcp://[::1]:5555", bind=False)
    assert wants_ipv6("tcp://[fd00::5]:5555", bind=True)
    assert wants_ipv6("tcp://*:5555", bind=True)
    assert not wants_ipv6("tcp://127.0.0.1:5555", bind=True)
    assert not wants_ipv6("tcp://localhost:5555", bind=False)
    assert not wants_ipv6("tcp://no-such-host.invalid:5555", bind=False)
    assert not wants_ipv6("ipc:///tmp/cellbus/bus", bind=True)

"""What each host of the bed listens on (tests/netbed.py), as an operator checks it with
``ss -ltnu`` on each machine: the broker its three bus ports on the address it was given,
the gateway its HTTP port on its ``--host``, and every ``--metrics-port`` on loopback only;
nothing else, and nothing on every address (0.0.0.0 or [::]) that was not asked for."""

from __future__ import annotations

import subprocess

from netbed import NetChain
from test_multihost import bed, output_text, run

__all__ = ["bed"]  # the fixture

METRICS_BROKER, METRICS_DEVICE = 9101, 9102


def _listening(chain: NetChain, host: str) -> set[tuple[str, str]]:
    """(protocol, local address:port) of every listening TCP and bound UDP socket on
    ``host``."""
    out = subprocess.run([*chain.bed.wrap(host), "ss", "-H", "-ltnu"], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return {(line.split()[0], line.split()[4]) for line in out.splitlines() if line.strip()}


def test_each_host_listens_where_it_was_told_only(bed: NetChain) -> None:
    """Tests the sockets of every host once a cell has run: exactly the ports above."""
    bed.start_broker("--metrics-port", str(METRICS_BROKER))
    bed.start_device("--metrics-port", str(METRICS_DEVICE))
    bed.start_gateway("--auth", "none", "--allow-anonymous")
    assert output_text(run(bed, "u/a/1", "print(1)")) == "1\n"
    broker = bed.bed.address("broker")
    assert _listening(bed, "broker") == {
        ("tcp", f"{broker}:{NetChain.GATEWAY_PORT}"), ("tcp", f"{broker}:{NetChain.DEVICE_PORT}"),
        ("tcp", f"{broker}:{NetChain.PUBLISH_PORT}"), ("tcp", f"127.0.0.1:{METRICS_BROKER}")}
    assert _listening(bed, "dev0") == {("tcp", f"127.0.0.1:{METRICS_DEVICE}")}
    assert _listening(bed, "gateway") == {
        ("tcp", f"{bed.bed.address('gateway')}:{NetChain.HTTP_PORT}")}

"""An MTU black hole between a device and the broker (tests/netbed.py): packets past a size
are dropped on the way and nobody says so (a link with a smaller MTU whose ICMP
"fragmentation needed" a firewall filters). Handshakes and heartbeats pass; a message bigger
than the hole never does, its TCP connection stalls, ZeroMQ's heartbeat closes it, and it is
made again to stall again: before, each node logged only its link lost and up again, and the
broker took the device for lost every few seconds, with nothing naming the cause."""

from __future__ import annotations

from netbed import NetChain, sh
from test_multihost import bed, output_text, run, start

__all__ = ["bed"]  # the fixture

#: The largest IP packet the hole lets through (the hosts' interfaces take 1500).
HOLE = 1200


def _hole(chain: NetChain, host: str) -> None:
    """Drop, on the broker's host, every packet from ``host`` bigger than :data:`HOLE`."""
    sh(*chain.bed.wrap("broker"), "nft",
       f"table inet mtuhole {{ chain in {{ type filter hook input priority 0; "
       f"ip saddr {chain.bed.address(host)} ip length > {HOLE} drop; }}; }}")


def test_an_mtu_black_hole_is_named_and_the_readme_remedy_works(bed: NetChain) -> None:
    """Tests a device behind an MTU black hole whose cell prints more than a packet holds:
    the device's log names the likely MTU black hole and the check and remedy; with the
    README's remedy (net.ipv4.tcp_mtu_probing=1 on the device's host) a cell's big output
    arrives, once."""
    start(bed, devices=1)
    assert output_text(run(bed, "u/ws/1", "print('small')")) == "small\n"
    _hole(bed, "dev0")
    assert bed.evaluate("u/ws/2", "print('x' * 5000)")[0] == 202
    device = bed.devices[0]
    device.wait_for_log(r"is lost again and again within 30 s of coming up: .* MTU black hole"
                        r" .*ping -M do -s 1472 " + bed.bed.address("broker").replace(".", r"\.")
                        + r".*tcp_mtu_probing=1", timeout=45)
    sh(*bed.bed.wrap("dev0"), "sysctl", "-q", "-w", "net.ipv4.tcp_mtu_probing=1")
    doc = bed.wait_done("u/ws/2", 45)
    assert output_text(doc) in ("", "x" * 5000 + "\n"), doc  # lost with its device, or run
    assert output_text(run(bed, "u/ws/3", "print('y' * 5000)", 45)) == "y" * 5000 + "\n"
    assert output_text(bed.update("u/ws/1")[1]) == "small\n"

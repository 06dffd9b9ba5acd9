"""Two machines on loopback with a TCP relay of the test's own between a device and the
broker (tests/tcp_relay.py), as a network that cuts, delays or corrupts the bus's CURVE
links: each fault is named in the nodes' logs once, not at every reconnect."""

from __future__ import annotations

from harness import Chain, stop_nodes, until
from protocol.linkwatch import REPEAT
from tcp_relay import Relay, port_of


def test_a_link_cut_again_and_again_is_named_once(chain: Chain) -> None:
    """Tests that a device whose link the network cuts soon after each reconnect (a
    middlebox, an MTU black hole) logs "lost again and again" once while it goes on (the
    line says it is repeated only after REPEAT seconds), not at each cut: before, the line
    was forgotten at each handshake and logged again at every cut after the second."""
    chain.start_broker()
    relay = Relay(port_of(chain.device_ep))
    try:
        chain.device_ep = relay.endpoint
        device = chain.start_device()
        device.wait_for_log(r"link to the broker at \S+ is up")
        for cut in range(1, 6):
            relay.cut()
            until(lambda n=cut: device.log.count("is up again") >= n, f"reconnect {cut}")
        flaps = device.log.count("is lost again and again within")
        assert flaps == 1, (flaps, REPEAT, device.log)
        assert device.proc.poll() is None
    finally:
        stop_nodes(chain.nodes)  # while the relay still carries the device's goodbye
        relay.close()

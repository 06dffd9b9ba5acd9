"""A broker frozen (SIGSTOP) long enough for its device to connect again while it slept,
then continued (SIGCONT): the cell the device ran through the freeze ends done with all its
lines, and the next cell runs.

The device connects again while its link is up and the broker is silent (device/router.py
``_reconnect``, for a broker's ROUTER that dropped its connection as a duplicate). To a
frozen broker those connections wait in its listen queue; as it goes on, the last one may be
identified before the broker has read the end of the device's first connection, and is then
dropped as a duplicate of it. The device's next attempt came after a doubled wait (4 s by
then, up to 32 s) and the broker, counting its expiry from when it ran again, took the device
for lost first: the cell ended with DeviceLost, its worker ended, its variables gone. The
device now tries again within the broker's expiry (protocol/heartbeat.py
``RECONNECT_EVERY``)."""

from __future__ import annotations

from harness import Chain, until
from test_frozen_nodes import LINES, frozen, lines_of, printing, stdout_of


def test_a_broker_frozen_while_its_device_connects_again_takes_no_device_for_lost(
        chain: Chain) -> None:
    """Tests that a broker frozen while its device connected again three times, continued
    just after the third, keeps the device: the running cell ends done with every line once,
    and the next cell runs."""
    broker = chain.start_broker()
    device = chain.start_device("--idle-timeout", "300", "--log-level", "DEBUG")
    chain.start_gateway()
    printing(chain, "u/ws/1")
    with frozen(broker):
        until(lambda: device.log.count("connecting again to the broker at") >= 3,
              "the device to connect again three times", timeout=30)
    doc = chain.wait_done("u/ws/1", timeout=60)
    assert doc["status"] == "done", f"{doc}\nbroker:\n{broker.log}\ndevice:\n{device.log}"
    assert lines_of(doc) == [f"L {i}" for i in range(LINES)]
    assert "is lost" not in broker.log
    status, reply = chain.evaluate("u/ws/2", "print('next')")
    assert status == 202, reply
    assert stdout_of(chain.wait_done("u/ws/2", timeout=30)) == ["next"]

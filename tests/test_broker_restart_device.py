"""A device whose broker is restarted (an upgrade: SIGTERM, then a start on the same store)
is heard by the new broker over the link it makes by itself, and keeps it: it does not take
the new broker for silent before it could answer, connect again, and so miss heartbeats."""

from __future__ import annotations

import re
import urllib.request

from harness import Chain, free_port, until


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
    heartbeat (cellbus_device_heartbeats_missed_total 1) at each restart."""
    metrics = free_port()
    broker = chain.start_broker("--metrics-port", str(metrics))
    chain.start_gateway()
    device = chain.start_device(name="dev")
    assert chain.evaluate("u/ws/1", "print(1)")[0] == 202
    assert chain.wait_done("u/ws/1")["status"] == "done"
    broker.stop()
    device.wait_for_log(r"device dev: no word from the broker")
    broker = chain.start_broker("--metrics-port", str(metrics))
    device.wait_for_log(r"device dev: the broker is back")  # (any reconnect came before)
    broker.wait_for_log(r"device dev registered")
    assert chain.evaluate("u/ws/2", "print(2)")[0] == 202
    assert chain.wait_done("u/ws/2")["status"] == "done"
    assert "connecting again" not in device.log, device.log
    assert until(lambda: (missed_heartbeats(metrics, "dev"),), "a scrape") == (0,)

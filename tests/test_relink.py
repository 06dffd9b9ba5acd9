"""device/relink.Unheard: when a device makes its link anew because the broker says it has
not heard it, and when not (the device itself was stopped, the link is down)."""

from __future__ import annotations

import time

from device.relink import Unheard
from protocol.heartbeat import UNHEARD, device_name, routing_id


def test_a_device_the_broker_did_not_hear_after_its_heartbeat_links_anew() -> None:
    """A heartbeat sent 1 s ago, and the broker says it heard nothing for 2 s: its routing
    id moves on (once per UNHEARD seconds), and names the same device."""
    unheard = Unheard("gpu1")
    unheard.beats.append(time.monotonic() - 1.0)
    assert unheard.says({"unheard": 2.0}, link_up_for=60.0)
    assert unheard.routing_id == b"gpu1\x001" and device_name(unheard.routing_id) == "gpu1"
    assert not unheard.says({"unheard": 2.5}, link_up_for=60.0)  # just made anew


def test_a_device_that_was_itself_stopped_does_not_link_anew() -> None:
    """A device stopped (SIGSTOP) for 3 s sent nothing meanwhile: the broker's heartbeats
    that waited for it rightly say it was not heard, and the link stays."""
    unheard = Unheard("gpu1")
    unheard.beats.append(time.monotonic() - 3.2)
    assert not unheard.says({"unheard": 2.9}, link_up_for=60.0)
    unheard.beats.append(time.monotonic())  # its first heartbeat after: not heard yet
    assert not unheard.says({"unheard": 3.0}, link_up_for=60.0)
    assert unheard.routing_id == b"gpu1" == routing_id("gpu1", 0)


def test_no_new_link_below_the_threshold_or_while_the_link_is_down() -> None:
    unheard = Unheard("gpu1")
    unheard.beats.append(time.monotonic() - 1.0)
    assert not unheard.says({"unheard": UNHEARD - 0.1}, link_up_for=60.0)
    assert not unheard.says({"unheard": 2.0}, link_up_for=None)
    assert not unheard.says({"unheard": 2.0}, link_up_for=0.2)  # a link just made
    assert not unheard.says({"handed": "x"}, link_up_for=60.0)  # an older broker
    assert not unheard.says({"unheard": True}, link_up_for=60.0)
    assert unheard.links == 0

"""Rules in protocol/ that nodes must agree on: the cell address and the heartbeat."""

from __future__ import annotations

import pytest

from broker.placement import DeviceTable
from protocol import heartbeat
from protocol.address import MAX_NAME, is_name


@pytest.mark.parametrize("value", ["a", "x" * MAX_NAME, "ünï cödé", "5"])
def test_names_accepted(value: str) -> None:
    assert is_name(value)


@pytest.mark.parametrize("value", ["", "x" * (MAX_NAME + 1), None, 5, ["a"], b"a"])
def test_names_refused(value: object) -> None:
    assert not is_name(value)


def test_the_broker_takes_a_device_for_lost_when_the_device_would_take_the_broker() -> None:
    """Both ends of a device link expire the other after the same silence."""
    assert heartbeat.EXPIRY == heartbeat.HEARTBEAT_INTERVAL * heartbeat.HEARTBEAT_LIVENESS
    assert DeviceTable().expiry == heartbeat.EXPIRY

"""The broker's check of a request's own limits (:mod:`protocol.asked`) against the maxima
the devices report: a request that asks for more than its device allows is refused with
400 naming the maximum, before anything is stored.

The maxima are those of the device holding the worksheet's session, or else the loosest of
the live devices (a device with a lower maximum still holds a request to it: the worker
never raises a limit above the device's own). With no live device there is nothing to
check against; the worker then keeps within its device's limits all the same.
"""

from __future__ import annotations

from typing import Any

from protocol.asked import NAMES, BadLimits, over, parse

from .placement import DeviceTable


def maxima(devices: DeviceTable, holder: str | None) -> dict[str, float] | None:
    """The maxima a request of a session on ``holder`` (None: not placed) is held to."""
    live = devices.live()
    held = [d for d in live if d.device == holder]
    if held:
        return held[0].limits
    if not live:
        return None
    loosest: dict[str, float] = {}
    for name in NAMES:
        values = [d.limits.get(name) or 0 for d in live]
        loosest[name] = 0 if 0 in values else max(values)
    return loosest


def refusal(content: dict[str, Any], devices: DeviceTable, holder: str | None) -> str | None:
    """Why an execute request's ``limits`` cannot be taken (None: they can, or it has none)."""
    if "limits" not in content:
        return None
    try:
        asked = parse(content["limits"])
    except BadLimits as e:
        return str(e)
    most = maxima(devices, holder)
    return over(asked, most) if most is not None else None

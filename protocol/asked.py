"""Per-request limits: an evaluate may ask for tighter limits than its device's, never looser.

A client sends ``{"limits": {"wall": 5, "memory": "256M", "cpu": 2}}`` with its input (any
subset): ``wall`` and ``cpu`` in seconds, ``memory`` in bytes or with a ``K``/``M``/``G``
suffix (powers of 1024). The gateway turns it into :data:`Asked` (seconds and bytes) with
:func:`parse` and puts it in the ``execute_request``'s content under ``"limits"``; the broker
refuses with 400 what is above the devices' maxima (:func:`over`); the device ends the cell
when its wall time passes, and the worker lowers its own soft ``RLIMIT_CPU`` and
``RLIMIT_AS`` for the execution (:mod:`session.tighter`), so a limit hit ends the cell with
that limit's error, as the device's own limits do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: Normalised per-request limits: ``wall`` and ``cpu`` in seconds, ``memory`` in bytes.
Asked = dict[str, float]
NAMES = ("wall", "memory", "cpu")
_SUFFIX = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
#: What each limit is called among the device's options (the operator's maximum).
OPTION = {"wall": "--exec-timeout", "memory": "--max-memory", "cpu": "--max-cpu"}


class BadLimits(ValueError):
    """The client's ``limits`` cannot be used; the message says why."""


def _number(name: str, value: Any) -> float:
    if isinstance(value, str) and name == "memory":
        text = value.strip().upper().removesuffix("B").removesuffix("I")
        scale = _SUFFIX.get(text[-1:], 1)
        try:
            value = float(text[:-1] if text[-1:] in _SUFFIX else text) * scale
        except ValueError:
            raise BadLimits(f"limits.memory {value!r}: give bytes or a number with K, M or "
                            "G") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadLimits(f"limits.{name} must be a number")
    if not math.isfinite(value) or value <= 0:
        raise BadLimits(f"limits.{name} must be a positive number")
    return float(int(value)) if name == "memory" else float(value)


def parse(limits: Any) -> Asked:
    """A client's ``limits`` object as :data:`Asked`; :class:`BadLimits` saying what is wrong."""
    if not isinstance(limits, dict):
        raise BadLimits('limits must be an object like {"wall": 5, "memory": "256M", "cpu": 2}')
    unknown = sorted(str(k)[:40] for k in limits if k not in NAMES)
    if unknown:
        raise BadLimits(f"unknown limits {', '.join(unknown)}: give wall, memory or cpu")
    return {name: _number(name, value) for name, value in limits.items()}


def show(name: str, value: float) -> str:
    """``value`` of limit ``name`` in words a user reads."""
    if name == "memory":
        for unit, size in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
            if value >= size:
                return f"{value / size:g} {unit}"
        return f"{value:g} bytes"
    return f"{value:g} s"


def over(asked: Asked, maxima: Mapping[str, float]) -> str | None:
    """Why ``asked`` is looser than ``maxima`` (a limit's absence or 0 there: none), naming
    the maximum; None if it is not."""
    for name in NAMES:
        value, most = asked.get(name), maxima.get(name) or 0
        if value is not None and most > 0 and value > most:
            return (f"limits.{name} {show(name, value)} is above this service's maximum of "
                    f"{show(name, most)} ({OPTION[name]}): ask for {show(name, most)} or less")
    return None


def from_content(content: Mapping[str, Any]) -> Asked:
    """The limits an ``execute_request``'s content asks for ({} if none or malformed: the
    gateway checked them; anything else sent on the bus asks for nothing)."""
    try:
        return parse(content["limits"]) if "limits" in content else {}
    except BadLimits:
        return {}

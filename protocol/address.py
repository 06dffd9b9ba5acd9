"""The cell address every node checks: ``user / worksheet / cell_id`` (seed 000's
``/home/wstein/myws/5``), each part a non-empty string of at most :data:`MAX_NAME`
characters. The gateway refuses a longer one from a browser and the broker from a gateway,
so both use this one rule."""

from __future__ import annotations

from typing import TypeGuard

#: Longest user, worksheet or cell id accepted.
MAX_NAME = 200


def is_name(value: object) -> TypeGuard[str]:
    """True if ``value`` can be a user, worksheet or cell id."""
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME

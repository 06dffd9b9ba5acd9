"""Parsing JSON from browsers: anything the bus could not carry is refused at the door.

``json.loads`` accepts more than a message on the bus can hold, and some of it only fails
later, inside a node: a ``RecursionError`` on deep nesting, ``NaN`` and ``Infinity`` (which
the JSON packer refuses), integers past 64 bits (which msgpack cannot pack, and SQLite and
MongoDB cannot store), and ``"\\ud800"`` escapes that decode to lone surrogates (which no
UTF-8 encoder accepts). :func:`load_json` refuses all of these with a ``ValueError`` whose
text says what is wrong, so a handler answers 400 instead of failing with a 500.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from protocol.shape import MAX_NESTING, too_deep

#: The integers every part of the bus can carry (msgpack: int64 and uint64).
INT_RANGE = (-(2**63), 2**64 - 1)


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:20]} is out of range for a number")
    return value


def _bounded(text: str) -> int:
    value = int(text)
    if not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise ValueError(f"{text[:20]}... does not fit in 64 bits")
    return value


def load_json(raw: bytes | str) -> Any:
    """The value of the JSON text ``raw``; ``ValueError`` with a reason for anything else."""
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite,
                           parse_int=_bounded)
    except RecursionError:
        raise ValueError(f"it nests deeper than {MAX_NESTING} levels") from None
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8") from None
    except ValueError as e:
        raise ValueError(f"it is not valid JSON ({str(e)[:100]})") from None
    if too_deep(value):
        raise ValueError(f"it nests deeper than {MAX_NESTING} levels")
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("it holds a lone surrogate (an unpaired \\ud800-\\udfff escape); "
                         "text must be valid Unicode") from None
    return value


def is_integer(value: Any) -> bool:
    """An integer of JSON: ``true`` and ``false`` are not (in Python a bool is an int, so
    ``isinstance(True, int)``, and a ``since`` of ``true`` was taken as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)

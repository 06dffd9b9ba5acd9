"""The shape limits of values that enter the bus from untrusted sides.

Session code (over its worker link) and browsers (HTTP and WebSocket JSON) may send values
nested arbitrarily deep. The bus itself has hard ceilings further down the line: msgpack
packs and unpacks at most about 1,024 levels, Python's ``json`` about 1,000, and the broker
wraps stored messages in replies a few levels deeper still. A value that passes at the edge
but not inside would fail in the middle of a node. So the edges refuse anything nested deeper
than :data:`MAX_NESTING`, far below every ceiling and far above what real output needs.
"""

from __future__ import annotations

from typing import Any

#: Deepest nesting of lists and dicts accepted from a worker or a browser.
MAX_NESTING = 100


def too_deep(value: Any, limit: int = MAX_NESTING) -> bool:
    """True if ``value`` nests lists, tuples or dicts more than ``limit`` levels deep.

    Iterative (no recursion, so it cannot itself hit the recursion limit) and it stops at
    the first container past the limit.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list, tuple)))
    return False

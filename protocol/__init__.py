"""cellbus's message layer: the wire format, the node base and the output fold.

Every other package talks to the others only through what is defined here. Names are imported
lazily (PEP 562), so a session worker that needs only ``protocol.link`` never loads ZeroMQ.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import ConfigError, ProtocolError
    from .node import Node
    from .program import run_node
    from .wire import Message, Session

__all__ = ["ConfigError", "Message", "Node", "ProtocolError", "Session", "run_node"]
_HOME = {"ConfigError": "errors", "ProtocolError": "errors", "Node": "node",
         "run_node": "program", "Message": "wire", "Session": "wire"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""cellbus's message layer: the wire format, the node base and the output fold.

Every other package talks to the others only through what is defined here.
"""

from .errors import ConfigError, ProtocolError
from .node import Node, run_node
from .wire import Message, Session

__all__ = ["ConfigError", "Message", "Node", "ProtocolError", "Session", "run_node"]

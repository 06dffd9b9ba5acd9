"""Jupyter's kernels REST and WebSocket API over cellbus's sessions (issue 22).

A kernel is a worksheet of the token's user named by a UUID; its session is a cellbus
session like any other (sandbox, placement, limits, durability). The channels WebSocket
replays the worksheet's stored output from the client's delivery position, kept in the
store (broker/kernels.py), so a reconnect loses and repeats nothing, even across a gateway
restart. Modules: :mod:`.kernelspecs` (which kernels there are), :mod:`.wire` (the two
WebSocket formats and channel names), :mod:`.model` (kernels as the broker sees them),
:mod:`.rest` (the HTTP routes), :mod:`.sessions` (``/api/sessions``), :mod:`.channels`
(the WebSocket).
"""

from __future__ import annotations

from typing import Any

from .channels import ChannelsHandler
from .rest import KERNEL_ID, REST_ROUTES
from .sessions import SESSION_ROUTES

ROUTES: list[tuple[str, Any]] = [
    (rf"/api/kernels/{KERNEL_ID}/channels", ChannelsHandler),
    *REST_ROUTES,
    *SESSION_ROUTES,
]

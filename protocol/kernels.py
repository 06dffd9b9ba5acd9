"""Kernel names as every node sees them: what a worksheet asks for, devices offer and the
broker places by.

A request carries its session's kernel in ``metadata["cellbus"]["kernel"]``; a request
without one is for :data:`DEFAULT_KERNEL`, the built-in Python session. Devices list what
they offer in their ``device_register``/``device_heartbeat`` content as ``kernels``: a list of
``{"name", "display_name", "language"}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: The built-in Python session's kernel (Jupyter's ipykernel is ``python3``).
DEFAULT_KERNEL = "python"
#: Gateway -> broker: the kernels offered (``GET /kernels``); the reply's content has
#: ``kernels``: [{name, display_name, language}].
KERNELS_REQUEST = "kernels_request"
KERNELS_REPLY = "kernels_reply"
#: Gateway -> broker: a ``restart_request`` whose content has ``"shutdown": true`` ends the
#: worksheet's session for good (a Jupyter kernel's shutdown), not for a fresh one. The broker
#: then stores and publishes a ``session_closed`` note with this reason, which every gateway
#: hears: each closes its channels sockets of that kernel, as the gateway that was asked does.
SHUT_DOWN = "shut down"
#: What a kernel name may look like (kernelspec names are [a-z0-9._-]).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def valid(name: object) -> bool:
    return isinstance(name, str) and NAME.fullmatch(name) is not None


def kernel_of(metadata: Mapping[str, Any]) -> str:
    """The kernel a request is for, from its metadata."""
    facts = metadata.get("cellbus")
    name = facts.get("kernel") if isinstance(facts, Mapping) else None
    return name if isinstance(name, str) and valid(name) else DEFAULT_KERNEL


def offered(report: Mapping[str, Any]) -> list[dict[str, str]]:
    """The kernels a device's register/heartbeat content lists (malformed entries dropped;
    a device that lists none offers the default one)."""
    kernels = report.get("kernels")
    if not isinstance(kernels, list):
        return [{"name": DEFAULT_KERNEL, "display_name": DEFAULT_KERNEL, "language": "python"}]
    return [{"name": k["name"], "display_name": str(k.get("display_name", k["name"]))[:200],
             "language": str(k.get("language", ""))[:100]}
            for k in kernels if isinstance(k, Mapping) and valid(k.get("name"))]

"""Which kernels this gateway offers, as Jupyter kernelspecs: the one place that knows.

They are the kernels the devices advertise, as the broker lists them (``GET /kernels``):
cellbus's built-in Python session as ``python`` (the default), and every Jupyter kernelspec a
device offers under its own name (ipykernel's ``python3``, IRkernel's ``ir``...). With no
device known yet, the built-in session alone. Everything else in :mod:`gateway.jupyter` asks
here.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any

from protocol import msgtypes as mt
from protocol.kernels import DEFAULT_KERNEL, KERNELS_REQUEST
from protocol.version import VERSION

from .model import Ask

#: The kernel a client that names none gets: the built-in Python session.
DEFAULT = DEFAULT_KERNEL


@dataclass(frozen=True)
class KernelSpec:
    name: str
    display_name: str
    language: str

    def model(self) -> dict[str, Any]:
        """The spec as ``GET /api/kernelspecs/NAME`` shows it (jupyter_server's model)."""
        return {"name": self.name, "resources": {}, "spec": {
            "argv": [], "env": {}, "display_name": self.display_name,
            "language": self.language, "interrupt_mode": "message", "metadata": {}}}

    def kernel_info(self) -> dict[str, Any]:
        """What ``kernel_info_reply`` says of a kernel of this spec."""
        python = self.language == "python"
        info: dict[str, Any] = {"name": self.language}
        if python:
            info.update({"version": platform.python_version(), "mimetype": "text/x-python",
                         "file_extension": ".py", "pygments_lexer": "ipython3",
                         "nbconvert_exporter": "python",
                         "codemirror_mode": {"name": "ipython", "version": 3}})
        return {"status": "ok", "protocol_version": mt.PROTOCOL_VERSION,
                "implementation": "cellbus", "implementation_version": VERSION,
                "banner": f"{self.display_name} on cellbus", "help_links": [],
                "language_info": info}


BUILTIN = KernelSpec(DEFAULT_KERNEL, "Python 3 (cellbus)", "python")


async def kernelspecs(ask: Ask) -> dict[str, KernelSpec]:
    """Every kernel offered now, by name (the built-in session while no device is known)."""
    reply = await ask(KERNELS_REQUEST, {}, ("", "", ""))
    specs = {k["name"]: KernelSpec(k["name"], str(k.get("display_name", k["name"])),
                                   str(k.get("language", ""))) for k in
             reply["content"].get("kernels", []) if isinstance(k, dict) and "name" in k}
    return specs or {BUILTIN.name: BUILTIN}


def spec_of(name: str, specs: dict[str, KernelSpec]) -> KernelSpec:
    """The spec of a kernel that runs (a device may have stopped offering it since)."""
    return specs.get(name) or KernelSpec(name, name, BUILTIN.language if name == BUILTIN.name
                                         else "")

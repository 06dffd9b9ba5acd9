"""Which kernels this gateway offers, as Jupyter kernelspecs: the one place that knows.

Today that is cellbus's built-in Python session, as ``python3``. When devices advertise the
kernels they offer (issue 21), :func:`kernelspecs` is what reads them; everything else in
:mod:`gateway.jupyter` asks here.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any

from protocol import msgtypes as mt
from protocol.version import VERSION

#: The kernel a client that names none gets.
DEFAULT = "python3"


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
        return {"status": "ok", "protocol_version": mt.PROTOCOL_VERSION,
                "implementation": "cellbus", "implementation_version": VERSION,
                "banner": f"{self.display_name} on cellbus", "help_links": [],
                "language_info": {
                    "name": self.language, "version": platform.python_version(),
                    "mimetype": "text/x-python", "file_extension": ".py",
                    "pygments_lexer": "ipython3", "nbconvert_exporter": "python",
                    "codemirror_mode": {"name": "ipython", "version": 3}}}


BUILTIN = KernelSpec("python3", "Python 3 (cellbus)", "python")


def kernelspecs() -> dict[str, KernelSpec]:
    """Every kernel offered, by name."""
    return {BUILTIN.name: BUILTIN}

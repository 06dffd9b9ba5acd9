"""What the session sandbox gives on this machine: its parts, and which are on or off and why.

The template finds out once, at start (:meth:`device.sandbox.Sandbox.probe`), and reports
a :class:`Protections` to the device, which logs it and shows it in ``bin/cellbus status``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: ``--sandbox``: every part the machine allows, all of them or refuse to start, or none.
MODES = ("auto", "require", "off")
PROTECTIONS = ("uid", "namespaces", "filesystem", "cgroups", "seccomp", "no_new_privs")


@dataclass
class Protections:
    """Which parts of the sandbox this machine gives, and why a part is off."""
    on: list[str] = field(default_factory=list)
    off: dict[str, str] = field(default_factory=dict)
    cgroup_version: str = ""
    #: What stays as PID 1 of each worker's namespace: the compiled init's path, else "".
    init: str = ""
    #: Bytes all workers may use together, as set on their cgroups' parent (0: none).
    memory_budget: int = 0

    def has(self, part: str) -> bool:
        return part in self.on

    def summary(self) -> str:
        """One line for the device's start log and ``bin/cellbus status``."""
        on = ", ".join(self.on) or "nothing"
        if set(self.off.values()) == {"--sandbox off"}:
            return "sandbox OFF (--sandbox off): only trusted code belongs here"
        if not self.off:
            return f"sandbox on: {on}"
        off = "; ".join(f"{k} ({why})" for k, why in self.off.items())
        return f"sandbox PARTLY OFF: on: {on}; off: {off}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Protections:
        return cls(on=list(d.get("on", [])), off=dict(d.get("off", {})),
                   cgroup_version=str(d.get("cgroup_version", "")), init=str(d.get("init", "")),
                   memory_budget=int(d.get("memory_budget", 0)))

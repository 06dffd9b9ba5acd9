"""Jupyter kernelspecs as a device finds them: listed, read once and checked, in the template.

A worker never looks a kernelspec up itself: inside its sandbox the environment is the
session's (no ``JUPYTER_PATH``, ``HOME`` is the session's folder) and the root holds only
the system and the venv, so a kernelspec the device found through ``JUPYTER_PATH`` or in
``~/.local/share/jupyter`` (``jupyter kernelspec install --user``) is not there. So the
device's template reads each kernelspec it offers when it starts (:func:`read`), checks that
it can be launched at all (an ``argv``, a program that exists), and every worker it forks
launches its kernel from that copy (:class:`OneSpec`). A kernelspec that fails the check is
not offered, and the device's log says why (``device cannot offer the kernel ...``).

Imports jupyter_client; :mod:`session.backends` imports this module only when a kernelspec
is asked for.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel

#: argv[0] values jupyter_client replaces with the Python it runs in.
PYTHONS = frozenset({"python", f"python{sys.version_info[0]}",
                     "python{}.{}".format(*sys.version_info[:2])})


def installed_kernels() -> dict[str, dict[str, str]]:
    """Every kernelspec this machine has: name -> {display_name, language}."""
    found: dict[str, dict[str, str]] = {}
    for name, entry in sorted(KernelSpecManager().get_all_specs().items()):
        spec = entry.get("spec", {})
        found[name] = {"display_name": str(spec.get("display_name", name)),
                       "language": str(spec.get("language", ""))}
    return found


def read(name: str) -> KernelSpec:
    """The kernelspec ``name``, checked (see :func:`check`); ``ValueError`` saying what is
    wrong with it, and where it is."""
    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise ValueError(f"no Jupyter kernelspec {name!r} is installed") from None
    except Exception as e:  # noqa: BLE001 - bad JSON, a field of the wrong type (TraitError)
        raise ValueError(f"the kernelspec {name!r} cannot be read: {e}") from None
    problem = check(spec)
    if problem:
        raise ValueError(f"the kernelspec {name!r} ({spec.resource_dir}/kernel.json) "
                         f"{problem}")
    return spec


def check(spec: KernelSpec) -> str:
    """What keeps ``spec`` from being launched ("" if nothing this side of starting it)."""
    argv: Any = spec.argv
    if not argv or not all(isinstance(a, str) for a in argv) or not argv[0].strip():
        return "has no argv (the command that starts the kernel)"
    env: Any = spec.env
    bad = sorted(str(k) for k, v in env.items() if not isinstance(v, str))
    if bad:
        return f"has an env whose values are not all strings: {', '.join(bad)}"
    ours = (spec.metadata or {}).get("cellbus", {})
    if not isinstance(ours, dict) or "interrupt_grace" in ours and interrupt_grace(spec) is None:
        return ("has a metadata.cellbus that is not {\"interrupt_grace\": seconds} (a number "
                "above 0)")
    program = os.path.expanduser(argv[0])
    if program in PYTHONS:
        return ""
    path = env.get("PATH", os.environ.get("PATH", os.defpath))
    if shutil.which(program.replace("{resource_dir}", spec.resource_dir), path=path) is None:
        where = "" if os.sep in program else f" on PATH {path}"
        return f"starts {program!r}, which is not an executable program{where}"
    return ""


def interrupt_grace(spec: KernelSpec | None) -> float | None:
    """The seconds ``spec`` gives its kernel to stop after an interrupt before it is
    restarted (``"metadata": {"cellbus": {"interrupt_grace": 30}}`` in its kernel.json, for
    a kernel whose interrupt takes long to handle), or None for the default."""
    ours = (spec.metadata or {}).get("cellbus") if spec is not None else None
    value = ours.get("interrupt_grace") if isinstance(ours, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e6:
        return float(value)
    return None


def paths(spec: KernelSpec, path: str) -> list[str]:
    """The host's files ``spec`` launches its kernel with: its program (looked up on
    ``path``, or on its env's ``PATH``) and every other argument that names an existing
    absolute path (``{resource_dir}`` filled in)."""
    argv = [a.replace("{resource_dir}", spec.resource_dir) for a in spec.argv]
    if not argv or os.path.expanduser(argv[0]) in PYTHONS:
        program = sys.executable
    else:
        program = shutil.which(os.path.expanduser(argv[0]),
                               path=spec.env.get("PATH", path)) or ""
    return [p for p in [program, *argv[1:]] if os.path.isabs(p) and os.path.exists(p)]


class OneSpec(KernelSpecManager):
    """Knows one kernelspec, read before the sandbox (the worker's KernelManager finds it
    here instead of on a path the sandbox may not have)."""

    def __init__(self, spec: KernelSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return self.spec

"""Finding session backends by name: the kernels a device can offer.

A *kernel* is what a worksheet asks for by name (``{"kernel": "ir"}``). A name is resolved,
in this order, as

1. ``module:Class`` — that :class:`~session.backend.SessionBackend` subclass;
2. an entry point of the group :data:`GROUP` (``cellbus.backends``) — how a package makes
   its backend known: ``python`` (the built-in session) and ``sqlite`` (the README's
   example) are registered by cellbus itself;
3. ``jupyter:NAME`` or the name of an installed Jupyter kernelspec (``python3`` for
   ipykernel, ``ir``, ``bash``) — :class:`session.jupyter.JupyterBackend` for it.

The built-in Python session is the kernel ``python`` ("Python 3 (cellbus)"); Jupyter's
ipykernel keeps its kernelspec name ``python3``. This module imports jupyter_client only
when a kernelspec is asked for.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Callable
from importlib import metadata

from protocol.kernels import DEFAULT_KERNEL

from .backend import BackendConfig, Output, SessionBackend

BackendFactory = Callable[[Output, BackendConfig], SessionBackend]
GROUP = "cellbus.backends"
JUPYTER_PREFIX = "jupyter:"


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=GROUP)}


def _check(spec: str, factory: object) -> BackendFactory:
    if not (isinstance(factory, type) and issubclass(factory, SessionBackend)):
        raise ValueError(f"backend {spec!r} is not a session.backend.SessionBackend")
    return factory


def jupyter_kernels() -> dict[str, dict[str, str]]:
    """Installed kernelspecs, name -> {display_name, language}; none without jupyter_client."""
    try:
        from .jupyter import installed_kernels
    except ImportError:
        return {}
    return installed_kernels()


def load_backend(spec: str) -> BackendFactory:
    """The backend named ``spec`` (see the module doc); ``ValueError`` saying what is wrong."""
    module_name, colon, attr = spec.partition(":")
    if spec.startswith(JUPYTER_PREFIX) or (not colon and spec not in _entry_points()
                                           and spec in jupyter_kernels()):
        from .jupyter import for_kernel
        _check_program(spec.removeprefix(JUPYTER_PREFIX))
        return for_kernel(spec.removeprefix(JUPYTER_PREFIX))
    if not colon:
        entry = _entry_points().get(spec)
        if entry is None:
            raise ValueError(f"backend {spec!r}: expected module:Class, one of the "
                             f"{GROUP} entry points {sorted(_entry_points())} or a Jupyter "
                             f"kernelspec {sorted(jupyter_kernels())}")
        try:
            return _check(spec, entry.load())
        except (ImportError, AttributeError) as e:
            raise ValueError(f"backend {spec!r}: {e}") from None
    if not module_name or not attr:
        raise ValueError(f"backend {spec!r}: expected module:Class")
    try:
        return _check(spec, getattr(importlib.import_module(module_name), attr))
    except (ImportError, AttributeError) as e:
        raise ValueError(f"backend {spec!r}: {e}") from None


def _check_program(name: str) -> None:
    """``ValueError`` if the program kernelspec ``name``'s ``argv`` starts is not there: it
    was offered, and each session of it died at start with a jupyter_client traceback."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise ValueError(f"backend {name!r}: no Jupyter kernelspec of that name") from None
    program = spec.argv[0] if spec.argv else ""
    # jupyter_client runs "python", "python3" and "python3.N" as its own interpreter.
    ours = {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]}
    if program not in ours and shutil.which(program) is None:
        raise ValueError(f"backend {name!r}: its kernelspec ({spec.resource_dir}/kernel.json) "
                         f"starts {program!r}, which is not an installed program")


def describe(name: str, factory: BackendFactory | None = None) -> dict[str, str]:
    """What ``GET /kernels`` says of a kernel: name, display_name, language."""
    jupyter = jupyter_kernels().get(name.removeprefix(JUPYTER_PREFIX))
    if jupyter is not None and (factory is None or getattr(factory, "kernel_name", None)):
        return {"name": name, **jupyter}
    factory = factory or load_backend(name)
    return {"name": name,
            "display_name": getattr(factory, "display_name", "") or name,
            "language": getattr(factory, "language", "")}


def default_kernels() -> list[str]:
    """What a device offers without ``--kernels``: the built-in session and every installed
    kernelspec."""
    return [DEFAULT_KERNEL, *jupyter_kernels()]


def offer(kernels: str, default: str,
          loaded: dict[str, BackendFactory]) -> list[dict[str, str]]:
    """What a device offers for ``kernels`` (comma-separated names; "": :func:`default_kernels`)
    when its kernel ``python`` runs the backend ``default``: per kernel ``{name, display_name,
    language, backend}`` (``backend``: the spec its workers are forked with), or ``{name,
    error}``. Backends loaded go into ``loaded`` (spec -> factory)."""
    names = [n.strip() for n in kernels.split(",") if n.strip()] or default_kernels()
    offered = []
    for name in dict.fromkeys(names):
        spec = default if name == DEFAULT_KERNEL else name
        try:
            factory = loaded.get(spec) or load_backend(spec)
            loaded[spec] = factory
            offered.append({**describe(name, factory), "backend": spec})
        except (ValueError, OSError) as e:
            offered.append({"name": name, "error": str(e)})
    return offered

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
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from protocol.kernels import DEFAULT_KERNEL, valid

from .backend import BackendConfig, Output, SessionBackend

BackendFactory = Callable[[Output, BackendConfig], SessionBackend]
GROUP = "cellbus.backends"
JUPYTER_PREFIX = "jupyter:"


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=GROUP)}


def _check(spec: str, factory: object) -> BackendFactory:
    """``factory`` if it is a backend the worker can start; else ``ValueError``. An abstract
    class is refused here, where the device says so once, rather than offered and then
    failing every run with BackendStartError."""
    if not (isinstance(factory, type) and issubclass(factory, SessionBackend)):
        raise ValueError(f"backend {spec!r} is not a session.backend.SessionBackend")
    if missing := sorted(getattr(factory, "__abstractmethods__", ())):
        raise ValueError(f"backend {spec!r} lacks {', '.join(missing)} (methods "
                         "session.backend.SessionBackend requires)")
    return factory


def _import(spec: str, module_name: str) -> object:
    """The module ``module_name``; ``ValueError`` naming ``spec`` if importing it fails in any
    way. A backend's own module may raise anything at import (its top level is the
    researcher's code), and that must be one line of the device, not the death of its
    template process with a traceback."""
    try:
        return importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"backend {spec!r}: {e}{_not_on_path(e, module_name)}") from None
    except Exception as e:
        raise ValueError(f"backend {spec!r}: importing {module_name} raised "
                         f"{type(e).__name__}: {e}") from None


def _not_on_path(error: ImportError, module_name: str) -> str:
    """Where a module not found is, when it sits in the current directory: the template
    that imports backends runs with ``-P``, so a researcher trying a backend from its own
    folder got only "No module named ..." about a file right there."""
    top = module_name.split(".")[0]
    if not isinstance(error, ModuleNotFoundError) or error.name != top:
        return ""
    here = next((p.name for p in (Path(f"{top}.py"), Path(top)) if p.exists()), None)
    return ("" if here is None else f" ({here} is in the current directory, which the device "
            "does not import backends from: give its folder as PYTHONPATH)")


def jupyter_kernels() -> dict[str, dict[str, str]]:
    """Installed kernelspecs, name -> {display_name, language}; none without jupyter_client."""
    try:
        from .kernelspecs import installed_kernels
    except ImportError:
        return {}
    return installed_kernels()


def kernelspec_names() -> set[str]:
    """Names of every kernelspec folder found, also of those that cannot be read (so that
    asking for one says what is wrong with it); none without jupyter_client."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager
    except ImportError:
        return set()
    return set(KernelSpecManager().find_kernel_specs())


def load_backend(spec: str) -> BackendFactory:
    """The backend named ``spec`` (see the module doc); ``ValueError`` saying what is wrong."""
    module_name, colon, attr = spec.partition(":")
    if spec.startswith(JUPYTER_PREFIX) or (not colon and spec not in _entry_points()
                                           and spec in kernelspec_names()):
        from .jupyter import for_kernel
        return for_kernel(spec.removeprefix(JUPYTER_PREFIX))
    if not colon:
        entry = _entry_points().get(spec)
        if entry is None:
            raise ValueError(f"backend {spec!r}: expected module:Class, one of the "
                             f"{GROUP} entry points {sorted(_entry_points())} or a Jupyter "
                             f"kernelspec {sorted(jupyter_kernels())}")
        _import(spec, entry.module)  # its own errors, named as for module:Class
        try:
            return _check(spec, entry.load())
        except AttributeError as e:
            raise ValueError(f"backend {spec!r}: {e}") from None
    if not module_name or not attr:
        raise ValueError(f"backend {spec!r}: expected module:Class")
    module = _import(spec, module_name)
    try:
        return _check(spec, getattr(module, attr))
    except AttributeError as e:
        raise ValueError(f"backend {spec!r}: {e}") from None


def describe(name: str, factory: BackendFactory | None = None) -> dict[str, str]:
    """What ``GET /kernels`` says of a kernel: name, display_name, language."""
    spec = getattr(factory, "kernel_spec", None)  # a kernelspec the template read
    if spec is not None:
        return {"name": name, "display_name": str(spec.display_name or name),
                "language": str(spec.language)}
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


def offer(kernels: str, default: str, loaded: dict[str, BackendFactory], *,
          loading: Callable[[str], None] | None = None) -> list[dict[str, str]]:
    """What a device offers for ``kernels`` (comma-separated; "": :func:`default_kernels`)
    when its kernel ``python`` runs the backend ``default``: per kernel ``{name, display_name,
    language, backend}`` (``backend``: the spec its workers are forked with), or ``{name,
    error}``. Backends loaded go into ``loaded`` (spec -> factory).

    Each item is a name (an entry point, a kernelspec: the kernel is called so) or
    ``NAME=SPEC``, the kernel ``NAME`` run by the backend ``SPEC`` (``calc=mymodule:Calc``);
    a kernel needs a name worksheets can ask for (:data:`protocol.kernels.NAME`): a bare
    ``module:Class`` has none, and was offered, then dropped by the broker without a word.
    ``loading`` is told, in words, each backend about to be imported (a module that never
    finishes importing holds the device's start: it names the one)."""
    items = [n.strip() for n in kernels.split(",") if n.strip()] or default_kernels()
    offered = []
    for item in dict.fromkeys(items):
        name, equals, spec = (part.strip() for part in item.partition("="))
        if not equals:
            spec = default if name == DEFAULT_KERNEL else name
        if not valid(name):
            offered.append({"name": item, "error": (
                f"{name!r} is not a kernel name (letters, digits, '.', '_' or '-', up to 64)"
                + (f"; name it: --kernels NAME={item}" if not equals else ""))})
            continue
        try:
            if not spec:
                raise ValueError("NAME= needs a backend after '='")
            if spec not in loaded and loading is not None:
                loading(f"the backend {spec!r} of the kernel {name!r}")
            factory = loaded.get(spec) or load_backend(spec)
            loaded[spec] = factory
            offered.append({**describe(name, factory), "backend": spec})
        except (ValueError, OSError) as e:
            offered.append({"name": name, "error": str(e)})
    return offered

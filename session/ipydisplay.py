"""IPython's ``display`` and ``clear_output`` in the built-in Python session.

Notebooks show rich output with ``from IPython.display import display, HTML``. Outside a
running IPython shell, IPython's ``display`` only prints each object, so in this session,
which is no IPython shell, that idiom showed ``<IPython.core.display.HTML object>`` as text
where Jupyter shows the table, and its ``clear_output`` printed an escape sequence, so an
animation's frames piled up. :func:`install` makes both functions the session's:
when user code imports IPython, a finder on ``sys.meta_path`` replaces the function in
``IPython.core.display_functions`` as that module loads, before ``IPython.display`` and
``IPython.core.display`` take the name from it (in a worker that had IPython loaded
already, every IPython module holding the function is patched at once). This module never
imports IPython itself.

What the session's display does not have, IPython's arguments that need a shell to mean
anything (``display_id``, ``transient``, ``include``, ``exclude``), are let go, as IPython
lets them go without one; ``raw=True`` shows each mimebundle (a dict) as it is.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

#: The module that defines IPython's display (IPython 8 and 9).
MODULE = "IPython.core.display_functions"

#: show(objs, raw, metadata): the session's display of objects (raw: mimebundles).
Show = Callable[[Sequence[Any], bool, Any], None]
#: clear(wait): the session's clear_output.
Clear = Callable[[bool], None]


def install(show: Show, clear: Clear) -> None:
    """Have IPython's ``display`` call `show` and its ``clear_output`` `clear`, now or once
    IPython is imported."""
    module = sys.modules.get(MODULE)
    if module is not None:
        _patch(module, show, clear)
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder(show, clear))


def _patch(module: ModuleType, show: Show, clear_now: Clear) -> None:
    def display(*objs: Any, include: Any = None, exclude: Any = None, metadata: Any = None,
                transient: Any = None, display_id: Any = None, raw: bool = False,
                clear: bool = False, **kwargs: Any) -> None:
        if clear:
            clear_now(True)
        show(objs, raw, metadata)

    def clear_output(wait: bool = False) -> None:
        clear_now(bool(wait))

    for name, ours in (("display", display), ("clear_output", clear_output)):
        original = getattr(module, name, None)
        ours.__doc__ = getattr(original, "__doc__", None)
        setattr(module, name, ours)
        # Modules of IPython that took the name already (loaded before: a preload).
        for key, other in list(sys.modules.items()):
            if original is not None and other is not None and key.split(".")[0] == "IPython" \
                    and getattr(other, name, None) is original:
                setattr(other, name, ours)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds :data:`MODULE` as Python would, and patches it once its code ran."""

    def __init__(self, show: Show, clear: Clear) -> None:
        self.show = show
        self.clear = clear

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module
        show, clear = self.show, self.clear

        def exec_module(module: ModuleType) -> None:
            run(module)
            _patch(module, show, clear)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec

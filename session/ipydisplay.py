"""IPython's ``display`` in the built-in Python session.

Notebooks show rich output with ``from IPython.display import display, HTML``. Outside a
running IPython shell, IPython's ``display`` only prints each object, so in this session,
which is no IPython shell, that idiom showed ``<IPython.core.display.HTML object>`` as text
where Jupyter shows the table. :func:`install` makes IPython's ``display`` the session's:
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


def install(show: Show) -> None:
    """Have IPython's ``display`` call `show`, now or once IPython is imported."""
    module = sys.modules.get(MODULE)
    if module is not None:
        _patch(module, show)
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder(show))


def _patch(module: ModuleType, show: Show) -> None:
    original = getattr(module, "display", None)

    def display(*objs: Any, include: Any = None, exclude: Any = None, metadata: Any = None,
                transient: Any = None, display_id: Any = None, raw: bool = False,
                clear: bool = False, **kwargs: Any) -> None:
        show(objs, raw, metadata)

    display.__doc__ = getattr(original, "__doc__", None)
    module.display = display  # type: ignore[attr-defined]
    # Modules of IPython that took the name already (loaded before: a preload).
    for name, other in list(sys.modules.items()):
        if (name == "IPython" or name.startswith("IPython.")) and other is not None \
                and getattr(other, "display", None) is original and original is not None:
            other.display = display  # type: ignore[attr-defined]


class _Finder(importlib.abc.MetaPathFinder):
    """Finds :data:`MODULE` as Python would, and patches it once its code ran."""

    def __init__(self, show: Show) -> None:
        self.show = show

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module
        show = self.show

        def exec_module(module: ModuleType) -> None:
            run(module)
            _patch(module, show)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec

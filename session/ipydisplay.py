"""IPython's ``display`` and ``clear_output`` in the built-in session: notebooks written
for Jupyter call ``from IPython.display import display, clear_output``, which, outside an
IPython shell, print each object's repr and terminal escapes (JupyterLab on the ``python``
kernel showed ``<IPython.core.display.HTML object>`` where ipykernel shows the HTML, and
every step of a progress loop where ipykernel shows the last). When user code imports
IPython, ``IPython.core.display_functions``'s two (which ``IPython.display`` and
``IPython.core.display`` re-export) are replaced, as soon as they are defined, by ones that
show through the session's display hook (:func:`session.display.set_display_hook`) and
send ``clear_output``. IPython is not imported by the session itself: a session that never
asks for it pays nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import uuid
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

#: The module that defines IPython's ``display`` (IPython 7.23 and later).
MODULE = "IPython.core.display_functions"

Hook = Callable[..., None]
#: Sends ``clear_output`` with its ``wait``: the running backend's (see :func:`install`).
_clear: Callable[[bool], None] | None = None


class _Raw:
    """A ``display(bundle, raw=True)`` bundle as an object the session's display shows:
    its ``text/plain`` as its repr, the rest and its metadata as its mimebundle."""

    def __init__(self, bundle: dict[str, Any], metadata: Any) -> None:
        self.bundle, self.metadata = bundle, metadata if isinstance(metadata, dict) else {}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        return ({k: v for k, v in self.bundle.items() if k != "text/plain"}, self.metadata)

    def __repr__(self) -> str:
        text = self.bundle.get("text/plain")
        return text if isinstance(text, str) else ""


def session_display(hook: Callable[[], Hook | None]) -> Callable[..., Any]:
    """IPython's ``display(*objs, raw=False, metadata=None, display_id=None, update=False,
    ...)`` on the session's hook (looked up at each call: the backend sets it). A display
    id goes as ipykernel sends it (``transient.display_id``; an update as
    ``update_display_data``), and one given returns IPython's ``DisplayHandle``, whose
    ``update`` comes back here (a Jupyter client replaces that display; the page, which has
    no display ids, shows one more). ``include``/``exclude`` are not carried."""

    def display(*objs: Any, raw: bool = False, metadata: Any = None,
                display_id: Any = None, update: bool = False, transient: Any = None,
                **_ignored: Any) -> Any:
        show = hook()
        if show is None:
            return None
        if display_id is True:
            display_id = uuid.uuid4().hex
        elif display_id is None and isinstance(transient, dict):
            display_id = transient.get("display_id")
        if raw:
            objs = tuple(_Raw(obj, metadata) for obj in objs if isinstance(obj, dict))
        if not isinstance(display_id, str) or not display_id:
            show(*objs)
            return None
        show(*objs, display_id=display_id, update=update is True)
        if update is True:
            return None
        from IPython.core.display_functions import DisplayHandle
        return DisplayHandle(display_id)

    return display


def session_clear_output(wait: bool = False) -> None:
    """IPython's ``clear_output(wait=False)`` as a Jupyter kernel sends it."""
    if _clear is not None:
        _clear(wait is True)


class _Patching(importlib.abc.Loader):
    """Runs the module as its own loader does, then puts the session's two in."""

    def __init__(self, loader: importlib.abc.Loader, display: Callable[..., Any]) -> None:
        self.loader, self.display = loader, display

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        module.display = self.display  # type: ignore[attr-defined]
        module.clear_output = session_clear_output  # type: ignore[attr-defined]


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, display: Callable[..., Any]) -> None:
        self.display = display

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _Patching(spec.loader, self.display)
        return spec


def install(hook: Callable[[], Hook | None], clear: Callable[[bool], None]) -> None:
    """From now on, IPython's ``display`` shows through ``hook()`` and its ``clear_output``
    calls ``clear(wait)`` (the last backend's: one per worker process)."""
    global _clear
    _clear = clear
    if any(isinstance(finder, _Finder) for finder in sys.meta_path):
        return
    display = session_display(hook)
    for name in (MODULE, "IPython.core.display", "IPython.display"):
        module = sys.modules.get(name)  # imported already (a preloaded template's choice)
        if module is not None:
            module.display = display  # type: ignore[attr-defined]
            module.clear_output = session_clear_output  # type: ignore[attr-defined]
    sys.meta_path.insert(0, _Finder(display))

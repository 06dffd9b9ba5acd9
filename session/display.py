"""Rich output: mimebundles for objects, and matplotlib figures as PNG images.

:func:`mimebundle` follows IPython's conventions (``_repr_mimebundle_``, ``_repr_html_``,
``_repr_png_`` ...; binary images become base64 text; ``text/plain`` is always ``repr``), and
never lets a failing ``_repr_*_`` method escape. Figures are drawn with whatever matplotlib the
user imported; this module imports matplotlib never itself, and only looks at
``sys.modules``. It holds the process's one *display hook* (set by the Python backend) that
``session.mplbackend.show()`` and :func:`show_open_figures` use.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

Bundle = dict[str, Any]

#: Methods tried, in order, and the mime type each one produces.
REPR_METHODS: tuple[tuple[str, str], ...] = (
    ("_repr_html_", "text/html"),
    ("_repr_markdown_", "text/markdown"),
    ("_repr_svg_", "image/svg+xml"),
    ("_repr_png_", "image/png"),
    ("_repr_jpeg_", "image/jpeg"),
    ("_repr_latex_", "text/latex"),
    ("_repr_json_", "application/json"),
)
_BINARY = frozenset({"image/png", "image/jpeg"})

_display_hook: Callable[..., None] | None = None


def set_display_hook(hook: Callable[..., None] | None) -> None:
    """Register the session's ``display(*objs)``; figures shown by pyplot go through it."""
    global _display_hook
    _display_hook = hook


def display_hook() -> Callable[..., None] | None:
    """The session's ``display(*objs)``, if one is registered."""
    return _display_hook


def mimebundle(obj: Any) -> tuple[Bundle, dict[str, Any]]:
    """``(data, metadata)`` for ``obj``; ``data`` always holds ``text/plain``."""
    data: Bundle = {}
    metadata: dict[str, Any] = {}
    if is_figure(obj):
        png = _figure_png(obj)
        if png is not None:
            data["image/png"] = png
    elif not isinstance(obj, type) and not _answers_anything(obj):
        _from_mimebundle_method(obj, data, metadata)
        for method, mime in REPR_METHODS:
            if mime not in data:
                _from_repr_method(obj, method, mime, data, metadata)
    data["text/plain"] = safe_repr(obj)
    return data, metadata


def safe_repr(obj: Any) -> str:
    try:
        text = repr(obj)
        if isinstance(text, str):
            return text
    except Exception:
        pass
    return f"<{type(obj).__name__} object at {id(obj):#x}>"


def _answers_anything(obj: Any) -> bool:
    """Objects whose ``__getattr__`` invents every attribute (proxies, mocks) get no
    ``_repr_*_`` calls."""
    try:
        return hasattr(obj, "_cellbus_canary_method_should_not_exist_")
    except Exception:
        return True


def _from_mimebundle_method(obj: Any, data: Bundle, metadata: dict[str, Any]) -> None:
    method = getattr(obj, "_repr_mimebundle_", None)
    if not callable(method):
        return
    try:
        got = method(include=None, exclude=None)
    except Exception:
        return
    md: Any = {}
    if isinstance(got, tuple) and len(got) == 2:
        got, md = got
    if isinstance(got, dict):
        for mime, value in got.items():
            if isinstance(mime, str) and mime != "text/plain":
                _put(data, mime, value)
    if isinstance(md, dict):
        metadata.update((k, v) for k, v in md.items() if isinstance(k, str) and _jsonable(v))


def _from_repr_method(obj: Any, name: str, mime: str, data: Bundle,
                      metadata: dict[str, Any]) -> None:
    try:
        method = getattr(obj, name, None)
        if not callable(method):
            return
        value = method()
    except Exception:
        return
    if isinstance(value, tuple) and len(value) == 2:
        value, md = value
        if isinstance(md, dict) and _jsonable(md):
            metadata[mime] = md
    _put(data, mime, value)


def _put(data: Bundle, mime: str, value: Any) -> None:
    """Store ``value`` under ``mime`` if it can travel: text, base64 bytes or JSON."""
    if value is None:
        return
    if mime == "application/json" or mime.endswith("+json"):
        if _jsonable(value):
            data[mime] = value
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if mime in _BINARY or not mime.startswith("text/"):
            data[mime] = base64.b64encode(raw).decode("ascii")
        else:
            data[mime] = raw.decode("utf-8", "replace")
    elif isinstance(value, str):
        data[mime] = value


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


# --- matplotlib --------------------------------------------------------------------------

def is_figure(obj: Any) -> bool:
    """Whether ``obj`` is a matplotlib ``Figure`` (without importing matplotlib)."""
    figure_mod = sys.modules.get("matplotlib.figure")
    figure_cls = getattr(figure_mod, "Figure", None)
    return isinstance(figure_cls, type) and isinstance(obj, figure_cls)


def _figure_png(fig: Any) -> str | None:
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png")
    except Exception:
        return None
    return base64.b64encode(buf.getvalue()).decode("ascii")


def close_figure(fig: Any) -> None:
    """Forget ``fig`` in pyplot, so that it is not shown a second time."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        try:
            pyplot.close(fig)
        except Exception:
            pass


def show_open_figures() -> None:
    """Show every figure pyplot holds through the display hook, then close it."""
    if "matplotlib.pyplot" not in sys.modules:
        return
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    gcf = getattr(helpers, "Gcf", None)
    if gcf is None:
        return
    figures = [manager.canvas.figure for manager in gcf.get_all_fig_managers()]
    for fig in figures:
        if _display_hook is not None:
            _display_hook(fig)
        close_figure(fig)


class _DropSetupNotices(logging.Filter):
    """Drops matplotlib's one-off setup notices (font cache, config dir), which are about the
    machine, not about the user's code."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "font cache" not in message and "MPLCONFIGDIR" not in message


def quiet_matplotlib_setup() -> None:
    """Keep matplotlib's setup notices out of the user's stderr (works before its import)."""
    for name in ("matplotlib", "matplotlib.font_manager"):
        logging.getLogger(name).addFilter(_DropSetupNotices())

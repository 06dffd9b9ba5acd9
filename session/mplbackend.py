"""A matplotlib backend for sessions: Agg drawing, and ``show()`` sends figures as PNG.

The worker selects it with ``MPLBACKEND=module://session.mplbackend`` before user code runs;
matplotlib imports it only when the user's code first needs a backend. ``show()`` displays
every open figure at once (as ``image/png`` display_data) and closes it; figures still open
when a block closes are shown by the block API. Touches only matplotlib's figure registry.
"""

from __future__ import annotations

from typing import Any

from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg

from .display import show_open_figures

FigureCanvas = FigureCanvasAgg
FigureManager = FigureManagerBase


def show(*args: Any, **kwargs: Any) -> None:
    """``plt.show()``: send the open figures now (``block`` and the rest are ignored)."""
    show_open_figures()

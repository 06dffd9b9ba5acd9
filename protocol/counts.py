"""Execution numbers: which runs a session counts, as IPython does.

A run of blank code (empty or whitespace only) stores no history and takes no execution
number: the session's worker does not advance its count for it, and whatever shows a run's
number (the worksheet page, a downloaded notebook) shows none for it. The page's Keep is
such a run, under a cell id of its own that no list of a worksheet's cells names.
"""

from __future__ import annotations

#: The cell id of the page's Keep (a keep-alive run of nothing, gateway/static/cellbus):
#: a session's run, not a cell's, so no list of a worksheet's cells names it.
KEEPALIVE_CELL = "keepalive"


def counted(code: object) -> bool:
    """True if a run of ``code`` takes an execution number (it is not blank)."""
    return isinstance(code, str) and not code.isspace() and code != ""

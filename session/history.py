"""The built-in session's input history: what a ``history_request`` is answered with.

A Jupyter console's Up arrow, JupyterLab's console and ``%history``-like tools ask the kernel
for it (``history_request``); IPython answers from its history database. The built-in
session keeps the cells that stored history (their ``execution_count`` is their line
number) in memory, for the life of the session, and answers the three kinds of access the
messaging spec names: ``tail`` (the last ``n``), ``range`` (lines ``start`` to ``stop`` of
a session; this session is number 1, and 0 or a negative number means it too) and
``search`` (a glob ``pattern``, the last ``n`` matches, ``unique``). With ``output``, each
entry is ``(session, line, (input, output))``, output being the result's ``text/plain``
(None if the cell had none). Anything malformed is answered with an empty history.
"""

from __future__ import annotations

import collections
import fnmatch
from typing import Any

#: The session number every entry carries (one session per kernel).
SESSION = 1
#: Cells remembered (the newest).
MAX_ENTRIES = 10_000


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


class History:
    """The cells of one session that stored history, oldest first."""

    def __init__(self) -> None:
        #: line -> (input, output text or None)
        self._lines: collections.OrderedDict[int, tuple[str, str | None]] = \
            collections.OrderedDict()

    def add(self, line: int, code: str, output: str | None) -> None:
        """Cell number ``line`` ran ``code``; its result's text was ``output``."""
        self._lines[line] = (code, output)
        self._lines.move_to_end(line)
        while len(self._lines) > MAX_ENTRIES:
            self._lines.popitem(last=False)

    def reply(self, content: dict[str, Any]) -> dict[str, Any]:
        """The content of the ``history_reply`` to ``content``."""
        kind = content.get("hist_access_type")
        entries = list(self._lines.items())
        if kind == "tail":
            n = _int(content.get("n"), 10)
            entries = entries[-n:] if n > 0 else []
        elif kind == "range":
            session = _int(content.get("session"), 0)
            start, stop = _int(content.get("start"), 0), _int(content.get("stop"), 0)
            if session not in (0, SESSION) and session >= 0:
                entries = []  # an earlier session: this kernel has none
            else:
                entries = [(line, e) for line, e in entries
                           if line >= start and (stop <= 0 or line < stop)]
        elif kind == "search":
            pattern = content.get("pattern")
            if not isinstance(pattern, str):
                return {"status": "ok", "history": []}
            entries = [(line, e) for line, e in entries if fnmatch.fnmatchcase(e[0], pattern)]
            if content.get("unique") is True:
                seen: dict[str, tuple[int, tuple[str, str | None]]] = {}
                for line, e in entries:
                    seen.pop(e[0], None)
                    seen[e[0]] = (line, e)
                entries = list(seen.values())
            n = _int(content.get("n"), 0)
            if n > 0:
                entries = entries[-n:]
        else:
            entries = []
        output = content.get("output") is True
        return {"status": "ok", "history": [
            [SESSION, line, [code, out] if output else code] for line, (code, out) in entries]}

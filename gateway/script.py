"""``/static/cellbus.js``: the browser client, one script made of the files of
``static/cellbus/``.

An embedder adds one ``<script>`` and calls ``cellbus.makeCell`` right after it, so the
client must be one classic script (a module, or several files, would change that contract);
its source is kept as files with one job each. The gateway joins them, in :data:`PARTS`
order, inside one function with ``"use strict"``, as they were when the client was one file:
no build step, no tool, and what the browser runs is what the files say, each part marked
with the file it came from. :class:`StaticFiles` is tornado's static file handler, serving
that script where ``static/cellbus.js`` would be (with the same ``ETag`` and ``?v=`` version
tornado gives any static file).

``python -m gateway.script`` prints the script (``bin/test`` lints it that way), and
``python -m gateway.script 1234`` says which file's line the script's line 1234 is.
"""

from __future__ import annotations

import datetime
import functools
import sys
from collections.abc import Generator
from pathlib import Path

from tornado.web import StaticFileHandler

#: The folder of the parts, and their order (the comment at the top of head.js says what
#: each one holds).
FOLDER = Path(__file__).resolve().parent / "static" / "cellbus"
PARTS = ("helpers.js", "math.js", "fold.js", "textview.js", "renderers.js", "interactcontrols.js",
         "interact.js", "poll.js", "channel.js", "channelin.js", "channelsizes.js",
         "channelstart.js", "editor.js", "cell.js", "cellview.js", "celltype.js",
         "cellinteracts.js", "usage.js", "session.js", "notebook.js", "sheetedits.js",
         "layoutstore.js", "runall.js",
         "worksheet.js")
#: Where tornado would look for the file the parts make.
SERVED = str(FOLDER.parent / "cellbus.js")


def _pieces() -> list[tuple[str, str]]:
    """(where it comes from, text) of each piece of the script, in order."""
    pieces = [("head.js", (FOLDER / "head.js").read_text(encoding="utf-8")),
              ("gateway/script.py", '(function () {\n  "use strict";\n')]
    for name in PARTS:
        pieces.append(("gateway/script.py", f"\n  // -- {name}\n"))
        pieces.append((name, (FOLDER / name).read_text(encoding="utf-8")))
    return [*pieces, ("gateway/script.py", "})();\n")]


@functools.cache
def source() -> bytes:
    """The whole script (read once per process: a gateway serves the files it started with)."""
    return "".join(text for _, text in _pieces()).encode("utf-8")


def origin(line: int) -> str:
    """Which file, and which line of it, line ``line`` of the script is (``cell.js:12``)."""
    first = 1
    for name, text in _pieces():
        lines = text.count("\n")
        if line < first + lines:
            return f"{name}:{line - first + 1}"
        first += lines
    return f"(after the end: the script has {first - 1} lines)"


class StaticFiles(StaticFileHandler):
    """tornado's ``/static/`` handler; ``cellbus.js`` is :func:`source` (through the hooks
    tornado documents for content that is not one file on disk)."""

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        if absolute_path == SERVED:
            return absolute_path
        return super().validate_absolute_path(root, absolute_path)

    @classmethod
    def get_content(cls, abspath: str, start: int | None = None,
                    end: int | None = None) -> Generator[bytes, None, None]:
        if abspath == SERVED:
            yield source()[start:end]
        else:
            yield from super().get_content(abspath, start, end)

    def get_content_size(self) -> int:
        if self.absolute_path == SERVED:
            return len(source())
        return super().get_content_size()

    def get_modified_time(self) -> datetime.datetime | None:
        """None: tornado then sends no ``Last-Modified`` (its ``ETag`` still holds)."""
        if self.absolute_path == SERVED:
            return None
        return super().get_modified_time()


if __name__ == "__main__":  # python -m gateway.script [LINE ...]: the script, or the origins
    if sys.argv[1:]:
        print("\n".join(f"{n}: {origin(int(n))}" for n in sys.argv[1:]))
    else:
        sys.stdout.buffer.write(source())

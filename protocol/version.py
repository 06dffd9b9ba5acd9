"""cellbus's version, said once: in the package metadata (``setup.cfg``).

Every node reads it from there through :mod:`importlib.metadata`, so ``pip install .`` (or
``-e .``, which ``bin/cellbus`` does) is what sets it. A checkout run without installing
(``PYTHONPATH=.``) reads the same line of its ``setup.cfg``; anything else says ``0+unknown``
rather than a number that may be wrong.
"""

from __future__ import annotations

import configparser
from importlib import metadata
from pathlib import Path

UNKNOWN = "0+unknown"


def installed_version() -> str:
    """The version of the installed ``cellbus`` distribution, else of this checkout."""
    try:
        return metadata.version("cellbus")
    except metadata.PackageNotFoundError:
        setup = configparser.ConfigParser(interpolation=None)
        setup.read(Path(__file__).resolve().parent.parent / "setup.cfg", encoding="utf-8")
        return setup.get("metadata", "version", fallback=UNKNOWN)


VERSION = installed_version()


def version_skew(who: str, theirs: object) -> str | None:
    """What to say of ``who`` reporting the version ``theirs`` (a device's registration),
    if it is not this node's: mid-upgrade, or a node left behind. None if it is the same."""
    if theirs == VERSION:
        return None
    said = theirs if isinstance(theirs, str) and theirs else "an unknown version (older)"
    return (f"{who} runs cellbus {str(said)[:40]}, this broker {VERSION}: nodes of different "
            "versions are not tested together; upgrade every node to one version")

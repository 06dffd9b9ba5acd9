"""What the device reports of an execution's usage (``metadata.usage`` of its
``execute_reply``, see :mod:`session.usage`): the worker's figures that have the right
type, and the output bytes the device counted itself; for a run whose worker died (a limit
stopped it, say), what the device saw of it (:func:`seen_usage`)."""

from __future__ import annotations

from typing import Any

#: What a worker may say about an execution's usage (session.usage), and the type of each.
USAGE_FIELDS = {"wall_seconds": float, "cpu_seconds": float, "peak_memory_bytes": int,
                "processes": int}


def usage_of(metadata: Any, output_bytes: int) -> dict[str, Any]:
    """The usage an ``execute_reply`` reports: the worker's figures that have the right
    type (nothing else it says passes), and the output bytes this device counted."""
    said = metadata.get("usage") if isinstance(metadata, dict) else None
    said = said if isinstance(said, dict) else {}
    usage: dict[str, Any] = {k: said[k] for k, kind in USAGE_FIELDS.items()
                             if isinstance(said.get(k), (int, float))
                             and not isinstance(said.get(k), bool)
                             and (kind is float or isinstance(said.get(k), int))}
    usage["output_bytes"] = output_bytes
    return usage


def seen_usage(wall_seconds: float, output_bytes: int) -> dict[str, Any]:
    """The usage of a run whose worker died: its figures went with it, so the wall time and
    output bytes the device measured."""
    return {"wall_seconds": round(wall_seconds, 4), "output_bytes": output_bytes}

"""The reply to a client's question about code that nobody could answer.

Jupyter's ``complete_request``, ``inspect_request``, ``is_complete_request`` and
``history_request`` go to the session, which answers
(:meth:`session.backend.SessionBackend.query`). A backend that cannot, and a gateway that
could not send one on (no session yet, over ``--rate``), give this reply instead: no
completions, nothing found, "unknown" (a client then takes Enter as a new line) and no
history.
"""

from __future__ import annotations

from typing import Any


def unanswered(msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    """The content of the reply to ``msg_type`` (a query) that knows nothing."""
    if msg_type == "complete_request":
        at = content.get("cursor_pos")
        at = at if isinstance(at, int) and not isinstance(at, bool) and at >= 0 else 0
        return {"status": "ok", "matches": [], "cursor_start": at, "cursor_end": at,
                "metadata": {}}
    if msg_type == "inspect_request":
        return {"status": "ok", "found": False, "data": {}, "metadata": {}}
    if msg_type == "history_request":
        return {"status": "ok", "history": []}
    return {"status": "unknown"}

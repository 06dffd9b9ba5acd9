"""A Jupyter client's ``execute_request`` content, checked field by field before it goes on.

What is forwarded is cellbus's own content (:func:`gateway.cells.execute_content`) with the
client's fields in place of its defaults, each checked: ``code`` a string within
``--max-input``, the flags booleans (never a default in place of what was sent), and
``user_expressions`` a map of names to expressions, counted with the code against the
limit (they are code too). A field that fails is a :class:`ValueError` whose text the
client's error reply says.
"""

from __future__ import annotations

from typing import Any

from ..cells import execute_content, within_limit

#: The execute_request fields that are true or false.
FLAGS = ("silent", "store_history", "allow_stdin", "stop_on_error")


def forwarded(content: dict[str, Any], max_input: int) -> dict[str, Any]:
    """The content to send the session for ``content``; ``ValueError`` (``TooLarge`` for
    one over the limit) saying what is wrong."""
    code = content.get("code")
    if not isinstance(code, str):
        raise ValueError("code must be a string")
    forward = execute_content(within_limit(code, max_input))
    for key in FLAGS:
        if isinstance(content.get(key), bool):
            forward[key] = content[key]
        elif content.get(key) is not None:
            raise ValueError(f"{key} must be true or false")
    expressions = content.get("user_expressions")
    if expressions is not None:
        if not isinstance(expressions, dict) or not all(
                isinstance(v, str) for v in expressions.values()):
            raise ValueError("user_expressions must map names to expressions (strings)")
        within_limit(code + "".join(f"{k}{v}" for k, v in expressions.items()), max_input)
        forward["user_expressions"] = expressions
    return forward


#: Execute requests of one socket remembered while their reply has not been handed to it.
MAX_UNANSWERED = 1024


class Unanswered:
    """The execute requests a channels client sent whose ``execute_reply`` it has not been
    handed yet, in order: what a new one queues behind, as the client sees it.

    ``stop_on_error`` aborts the requests queued behind a failing one (device/aborts.py),
    and a Jupyter client's "Run All" sends its cells at once, before any reply; the broker
    accepts them one at a time, so a cell that fails fast could end before the later ones
    are accepted, and they would run. The gateway reads them as they were sent (it does not
    wait for each one's acceptance) and names, with each, the client's last request still
    unanswered (the broker's ``behind`` fact): queued behind it from the client's view."""

    def __init__(self) -> None:
        self._ids: dict[str, None] = {}

    def sent(self, msg_id: str) -> str | None:
        """The client sent ``msg_id``: the last one before it still unanswered, if any."""
        last = next(reversed(self._ids), None)
        self._ids[msg_id] = None
        if len(self._ids) > MAX_UNANSWERED:
            del self._ids[next(iter(self._ids))]
        return last

    def answered(self, msg_id: object) -> None:
        """The reply to ``msg_id`` was handed to the client (or it was refused)."""
        if isinstance(msg_id, str):
            self._ids.pop(msg_id, None)

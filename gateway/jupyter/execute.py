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

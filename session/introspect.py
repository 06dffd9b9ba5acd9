"""What the built-in Python session answers about code: completions, help, completeness.

Jupyter's ``complete_request``, ``inspect_request`` and ``is_complete_request`` for one
namespace, with the standard library: names, keywords and attributes complete from the
namespace, its builtins and :func:`dir` of the object a dotted name looks up (attributes
are read, nothing is evaluated), :mod:`inspect` gives an object's signature and docstring,
and :mod:`codeop` says whether code is complete, as the interactive interpreter decides. Not
:mod:`rlcompleter`: it imports GNU readline, whose start sets ``LINES`` and ``COLUMNS`` in
the process's environment, and every program a session started then had them. Each
function takes the request's content as the client sent it and returns the reply's content.
"""

from __future__ import annotations

import codeop
import inspect
import keyword
import re
import warnings
from typing import Any

#: Completions sent at most (a client shows a list; it never needs thousands).
MAX_MATCHES = 500
#: Longest docstring and value shown, in characters.
MAX_DOC = 20_000
MAX_REPR = 1_000
#: What a name or an attribute chain is made of, ending at the cursor.
_BEFORE = re.compile(r"[\w.]*$")
_AFTER = re.compile(r"^\w*")


def _code_and_cursor(content: dict[str, Any]) -> tuple[str, int]:
    """The request's code and cursor (in code points, Jupyter 5.2+), made valid."""
    code = content.get("code")
    code = code if isinstance(code, str) else ""
    at = content.get("cursor_pos")
    at = at if isinstance(at, int) and not isinstance(at, bool) else len(code)
    return code, min(max(at, 0), len(code))


def complete(namespace: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    """``complete_reply``: the names and attributes that complete the text at the cursor."""
    code, at = _code_and_cursor(content)
    text = _BEFORE.search(code[:at])
    typed = text.group(0) if text else ""
    owner, dot, start = typed.rpartition(".")
    if dot:  # an attribute of what ``owner`` names (looked up, not evaluated)
        found, obj = _find(namespace, owner)
        names: set[str] = set()
        if found:
            with warnings.catch_warnings():  # a deprecated attribute warns when it is read
                warnings.simplefilter("ignore")
                names = set(_attributes(obj))
        matches = [f"{owner}.{n}" for n in sorted(names)
                   if n.startswith(start) and (start.startswith("_") or not n.startswith("_"))]
    else:
        names = {*keyword.kwlist, *keyword.softkwlist, *_builtins(namespace), *namespace}
        matches = sorted(n for n in names if n.startswith(start) and isinstance(n, str)
                         and (start.startswith("_") or not n.startswith("_")))
    return {"status": "ok", "matches": matches[:MAX_MATCHES], "cursor_start": at - len(typed),
            "cursor_end": at, "metadata": {}}


def _attributes(obj: Any) -> list[str]:
    """What ``dir`` says ``obj`` has (nothing, if its ``__dir__`` raises)."""
    try:
        return [n for n in dir(obj) if isinstance(n, str)]
    except Exception:  # noqa: BLE001 (a __dir__ of the user's that raises)
        return []


def _builtins(namespace: dict[str, Any]) -> dict[str, Any]:
    scope = namespace.get("__builtins__", {})
    return scope if isinstance(scope, dict) else vars(scope)


def _find(namespace: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    """The object ``dotted`` names (``np.linalg.norm``), looked up without evaluating code
    but attribute access; (False, None) when it is not there."""
    names = [n for n in dotted.split(".") if n]
    if not names:
        return False, None
    builtins = _builtins(namespace)
    if names[0] in namespace:
        obj = namespace[names[0]]
    elif names[0] in builtins:
        obj = builtins[names[0]]
    else:
        return False, None
    for name in names[1:]:
        try:
            obj = getattr(obj, name)
        except Exception:  # noqa: BLE001 (missing, or its property raised)
            return False, None
    return True, obj


def inspect_object(namespace: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    """``inspect_reply``: the type, signature and docstring of the name at the cursor."""
    code, at = _code_and_cursor(content)
    before = _BEFORE.search(code[:at])
    after = _AFTER.search(code[at:])
    dotted = (before.group(0) if before else "") + (after.group(0) if after else "")
    found, obj = _find(namespace, dotted.strip("."))
    if not found:
        return {"status": "ok", "found": False, "data": {}, "metadata": {}}
    lines = [f"Type:      {type(obj).__name__}"]
    try:
        lines.append(f"Signature: {dotted}{inspect.signature(obj)}")
    except (TypeError, ValueError):  # no signature (a number, a builtin without one)
        if not callable(obj):
            lines.append(f"Value:     {_text(repr, obj, MAX_REPR)}")
    doc = _text(inspect.getdoc, obj, MAX_DOC)
    if doc:
        lines += ["Docstring:", doc]
    return {"status": "ok", "found": True, "data": {"text/plain": "\n".join(lines)},
            "metadata": {}}


def _text(describe: Any, obj: Any, limit: int) -> str:
    """``describe(obj)`` cut to ``limit`` characters; "" if it raises or is no string."""
    try:
        text = describe(obj)
    except Exception:  # noqa: BLE001 (a __repr__ that raises)
        return ""
    if not isinstance(text, str):
        return ""
    return text if len(text) <= limit else text[:limit] + "..."


def is_complete(content: dict[str, Any]) -> dict[str, Any]:
    """``is_complete_reply``: complete, incomplete (with the next line's indent) or invalid,
    as Python's interactive interpreter would decide."""
    code = content.get("code")
    if not isinstance(code, str):
        return {"status": "unknown"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = codeop.compile_command(code, "<cell>", "exec")
    except (SyntaxError, ValueError, OverflowError):
        return {"status": "invalid"}
    if compiled is not None:
        return {"status": "complete"}
    last = code.rstrip("\n").split("\n")[-1] if code.strip() else ""
    indent = last[:len(last) - len(last.lstrip())]
    return {"status": "incomplete", "indent": indent + "    " if last.rstrip().endswith(":")
            else indent}

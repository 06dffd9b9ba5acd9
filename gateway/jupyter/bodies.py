"""The fields of Jupyter's REST bodies, checked: a value of the wrong type is a 400 that
names the field, never a default put in its place (``{"name": 5}`` used to start the
default kernel). ``null`` counts as absent, as jupyter_server reads it."""

from __future__ import annotations

from typing import Any

from ..errors import fail

#: A session's own fields, as jupyter_server keeps them (strings).
ABOUT = ("path", "name", "type")
#: Characters one of them may have (a path's limit on Linux): they are stored with the
#: kernel, and a megabyte of "path" per kernel start only filled the store.
MAX_ABOUT = 4096


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for an error message."""
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "an array", dict: "an object"}
    return names.get(type(value), "null")


def text(body: dict[str, Any], key: str, what: str) -> str | None:
    """``body[key]`` if it is a string, None if absent or null; else a 400."""
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    raise fail(400, f"the {what} ({key!r}) must be a string, not {json_type(value)}")


def kernel_of(body: dict[str, Any]) -> dict[str, Any]:
    """A session body's ``kernel``: ``{}`` if absent or null; else an object or a 400."""
    kernel = body.get("kernel")
    if kernel is None:
        return {}
    if not isinstance(kernel, dict):
        raise fail(400, f"'kernel' must be an object like {{\"name\": \"python\"}}, not "
                        f"{json_type(kernel)}")
    text(kernel, "id", "kernel id")
    text(kernel, "name", "kernel name")
    return kernel


def about(body: dict[str, Any]) -> dict[str, str]:
    """A session's path, name and type from a client's body (strings of at most
    :data:`MAX_ABOUT` characters; else a 400)."""
    given = {k: v for k in ABOUT if (v := text(body, k, f"session {k}")) is not None}
    for k, v in given.items():
        if len(v) > MAX_ABOUT:
            raise fail(400, f"the session {k} is {len(v)} characters long; the limit is "
                            f"{MAX_ABOUT}")
    return given


def unknown_kernel(name: str) -> Exception:
    """jupyter_server's words for a kernelspec it does not have (its status there is 500
    on /api/kernels, 501 on /api/sessions; a name the client chose is a 400 here)."""
    return fail(400, f"The {name!r} kernel is not available. Please pick another suitable "
                     "kernel instead, or install that kernel (GET /api/kernelspecs lists "
                     "them).")

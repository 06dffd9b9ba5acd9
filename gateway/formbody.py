"""A POST body as an object, whether the client sent JSON or a form.

The README says bodies are JSON or a form (:mod:`gateway.guard` answers 415 to anything
else), so every route that reads an object takes both: ``curl -d value=x`` works where
``curl --json '{"value": "x"}'`` does. A form field is its text (the first, if repeated);
fields whose values are not text (an interact's ``values`` and ``state``, a permalink's
``interact``) are JSON text in a form, named by the route's ``json_fields``.

A body that opens with ``{`` is JSON whatever its ``Content-Type`` says: ``curl -d
'{"input": ...}'`` labels it a form, which made a form of one field named by the whole
JSON text, and an evaluate without ``input``, which runs the cell's *stored* input again.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from tornado.web import RequestHandler

from .guard import FORM_TYPES, body_type
from .jsonbody import load_json


def reads_as_form(handler: RequestHandler) -> bool:
    """Whether the request's body is read as a form: it says it is one and does not open
    with ``{`` (module docstring)."""
    return body_type(handler) in FORM_TYPES and handler.request.body.lstrip()[:1] != b"{"


def load_body(handler: RequestHandler, *, json_fields: Collection[str] = ()) -> dict[str, Any]:
    """The request's body as an object (``{}`` if empty); ``ValueError`` with a reason for
    a body that is no JSON object, or a form field that is not UTF-8 or not JSON where it
    must be."""
    request = handler.request
    if not request.body:
        return {}
    if reads_as_form(handler):
        body: dict[str, Any] = {}
        for name, values in request.body_arguments.items():
            try:
                text = values[0].decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"the form field {name[:50]!r} is not UTF-8") from None
            try:
                body[name] = load_json(text) if name in json_fields else text
            except ValueError as e:
                raise ValueError(f"the form field {name[:50]!r} must be JSON: {e}") from None
        return body
    value = load_json(request.body)
    if not isinstance(value, dict):
        raise ValueError("it is not a JSON object")
    return value

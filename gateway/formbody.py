"""A POST body as an object, whether the client sent JSON or a form.

The README says bodies are JSON or a form (:mod:`gateway.guard` answers 415 to anything
else), so every route that reads an object takes both: ``curl -d value=x`` works where
``curl --json '{"value": "x"}'`` does. A form field is its text (the first, if repeated);
fields whose values are not text (an interact's ``values`` and ``state``, a permalink's
``interact``) are JSON text in a form, named by the route's ``json_fields``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

from tornado.web import RequestHandler

from .guard import body_type
from .jsonbody import load_json

FORM_TYPES: Final = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def load_body(handler: RequestHandler, *, json_fields: Collection[str] = ()) -> dict[str, Any]:
    """The request's body as an object (``{}`` if empty); ``ValueError`` with a reason for
    a body that is no JSON object, or a form field that is not UTF-8 or not JSON where it
    must be."""
    request = handler.request
    if not request.body:
        return {}
    if body_type(handler) in FORM_TYPES:
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

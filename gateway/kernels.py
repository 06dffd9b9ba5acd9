"""``GET /kernels``: the kernels a worksheet may ask for, as the broker knows them from its
devices (name, display_name, language); and the ``kernel`` an evaluate names."""

from __future__ import annotations

from typing import Any

from protocol.kernels import KERNELS_REQUEST

from .base import BaseHandler
from .errors import fail


class KernelsHandler(BaseHandler):
    async def get(self) -> None:
        reply = await self.ask(KERNELS_REQUEST, {}, ("", "", ""))
        self.write_json(200, {"kernels": reply["content"].get("kernels", [])})


def asked_kernel(handler: BaseHandler, body: dict[str, Any] | None) -> str | None:
    """The ``kernel`` of an evaluate: its JSON body's field, or the form field (None: not
    named; the broker checks the name)."""
    if body is None:
        values = handler.request.body_arguments.get("kernel")
        return values[0].decode("utf-8", "replace") if values else None
    kernel = body.get("kernel")
    if kernel is not None and not isinstance(kernel, str):
        raise fail(400, "kernel must be a string, one of those GET /kernels lists")
    return kernel

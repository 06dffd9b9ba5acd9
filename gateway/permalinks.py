"""Permalinks: ``POST /permalink`` stores code to share and answers its id; ``GET
/permalink/ID`` answers the code, ``DELETE /permalink/ID`` deletes it (its maker only, by
token). The page opens ``/?q=ID`` with that code ready to run, or ``/?z=...`` with code
carried in the URL itself (zlib, then base64url, as SageMathCell's links), which needs
nothing stored (see ``cellbus.js``: ``sharedCode``, ``share``).

The broker keeps them (:mod:`broker.permalinks`): they belong to no session, survive
restarts, and count against the maker's ``--user-permalinks`` quota.
"""

from __future__ import annotations

from typing import Any

from protocol import msgtypes as mt

from .base import BaseHandler, fail
from .bigreads import answer_read
from .guard import charge
from .formbody import load_body


class PermalinkHandler(BaseHandler):
    """``POST /permalink`` ``{"code": "...", "interact": {...}}`` -> 201 ``{"id", "url"}``."""

    async def post(self) -> None:
        charge(self, self.visitor)  # --rate, as for evaluate
        try:
            body = load_body(self, json_fields=("interact",))
        except ValueError as e:
            raise fail(400, f"the body cannot be used: {e}; send {{\"code\": \"...\"}}") \
                from None
        if not isinstance(body.get("code"), str):
            raise fail(400, 'send {"code": "...", "interact": {...} (optional)}')
        interact = body.get("interact")
        if interact is not None and not isinstance(interact, dict):
            raise fail(400, "interact must be an object of the controls' values, or null")
        limit = self.settings["max_input"]
        if len(self.request.body) > limit:
            raise fail(413, f"a permalink is over the limit of {limit} bytes")
        content: dict[str, Any] = {"code": body["code"], "interact": interact}
        reply = await self.ask(mt.PERMALINK_REQUEST, content, (self.visitor.user or "", "", ""))
        pid = reply["content"]["id"]
        self.write_json(201, {"id": pid, "url": f"/?q={pid}"})


class PermalinkGetHandler(BaseHandler):
    """``GET /permalink/ID`` -> ``{"id", "code", "interact"}`` (over 256 KiB, a token of
    ``--rate``), or 404; ``DELETE /permalink/ID`` -> ``{"deleted": ID}`` if the token's
    user made it, else 404."""

    async def get(self, pid: str) -> None:
        reply = await self.ask(mt.PERMALINK_GET_REQUEST, {"id": pid}, ("", "", ""))
        c = reply["content"]
        answer_read(self, {"id": c["id"], "code": c["code"], "interact": c["interact"]})

    async def delete(self, pid: str) -> None:
        reply = await self.ask(mt.PERMALINK_DELETE_REQUEST, {"id": pid},
                               (self.visitor.user or "", "", ""))
        self.write_json(200, {"deleted": reply["content"]["id"]})


ROUTES = [(r"/permalink", PermalinkHandler),
          (r"/permalink/([A-Za-z0-9_-]{1,64})", PermalinkGetHandler)]

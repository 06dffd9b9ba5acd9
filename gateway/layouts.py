"""``/home/USER/WORKSHEET/layout``: the worksheet's cells in order, as its page saved them
(``GET`` reads, ``POST {"cells": [...]}`` replaces). The broker keeps it
(:mod:`broker.layouts`) as a note of the worksheet that no device or kernel sees; the page
(``worksheet.html``) builds its cells from it, so Markdown cells come back in their place
after a reload and in another browser. Only the worksheet's user may read or save it, as
for its cells (the path has three parts, the last ``layout``, so the cell checks apply).
"""

from __future__ import annotations

from protocol import msgtypes as mt

from .base import BaseHandler, check_address, fail
from .jsonbody import load_json


class LayoutHandler(BaseHandler):
    """``GET`` -> ``{"cells": [{id, type, code}] or null}``; ``POST {"cells": [...]}`` ->
    ``{"cells": N}``."""

    async def get(self, user: str, worksheet: str, what: str) -> None:
        reply = await self.ask(mt.WORKSHEET_LAYOUT_GET_REQUEST, {},
                               check_address(user, worksheet, what))
        self.write_json(200, {"cells": reply["content"]["cells"]})

    async def post(self, user: str, worksheet: str, what: str) -> None:
        limit = self.settings["max_input"]
        if len(self.request.body) > limit:
            raise fail(413, f"a layout is over the limit of {limit} bytes")
        try:
            body = load_json(self.request.body)
        except ValueError as e:
            raise fail(400, f"the body cannot be used: {e}; send {{\"cells\": [...]}}") \
                from None
        if not isinstance(body, dict):
            raise fail(400, 'send {"cells": [{"id", "type", "code"}, ...]}')
        reply = await self.ask(mt.WORKSHEET_LAYOUT_REQUEST, {"cells": body.get("cells")},
                               check_address(user, worksheet, what))
        self.write_json(200, {"cells": reply["content"]["cells"]})


ROUTES = [(r"/home/([^/]+)/([^/]+)/(layout)", LayoutHandler)]

"""``/home/USER/WORKSHEET/layout``: the worksheet's cells in order, as its page saved them
(``GET`` reads, ``POST {"cells": [...]}`` replaces). The broker keeps it
(:mod:`broker.layouts`) as a note of the worksheet that no device or kernel sees; the page
(``worksheet.html``) builds its cells from it, so Markdown cells come back in their place
after a reload and in another browser. Only the worksheet's user may read or save it, as
for its cells (the path has three parts, the last ``layout``, so the cell checks apply). A
read of a layout over 256 KiB counts against ``--rate`` as a big ``/update`` answer does.

A save may add a row to the store, so it counts against ``--rate`` as a permalink or an
evaluate does, unless this gateway saved that worksheet's layout lately
(:class:`SavedLayouts`): the page saves half a second after typing stops, and those saves
replace a row. Without that, an anonymous public service (where ``--user-layouts``, a count
per user name, binds no one) let one client fill the store's disk with new worksheets.
"""

from __future__ import annotations

from collections import OrderedDict

from tornado.web import HTTPError

from protocol import msgtypes as mt

from .base import BaseHandler, check_address, fail
from .bigreads import answer_read
from .guard import charge


class SavedLayouts:
    """The worksheets (user, name) whose layout this gateway saved lately, the most recent
    :data:`KEPT`."""

    #: Worksheets remembered; past it the one saved longest ago is forgotten.
    KEPT = 4096

    def __init__(self) -> None:
        self._saved: OrderedDict[tuple[str, str], None] = OrderedDict()

    def __contains__(self, worksheet: tuple[str, str]) -> bool:
        return worksheet in self._saved

    def add(self, worksheet: tuple[str, str]) -> None:
        self._saved[worksheet] = None
        self._saved.move_to_end(worksheet)
        if len(self._saved) > self.KEPT:
            self._saved.popitem(last=False)


#: A save's ``on_conflict`` that has a conflict answered 200 (:meth:`LayoutHandler.post`).
REPORT = "report"


class LayoutHandler(BaseHandler):
    """``GET`` -> ``{"cells": [{id, type, code}] or null, "revision", "ran": [cell ids
    with runs] (null: too many to list)}``; ``POST {"cells":
    [...], "base": REVISION?}`` -> ``{"cells": N, "revision"}``, or 409 if ``base`` (the
    revision the page loaded) is no longer the stored one. With ``"on_conflict":
    "report"`` that conflict is answered 200 ``{"saved": false, "conflict": "deleted" or
    "changed", "error"}`` instead: the worksheet page expects it (the worksheet was deleted
    or saved by another tab), and a browser logs every 4xx answer as a console error."""

    async def get(self, user: str, worksheet: str, what: str) -> None:
        reply = await self.ask(mt.WORKSHEET_LAYOUT_GET_REQUEST, {},
                               check_address(user, worksheet, what))
        answer_read(self, {k: reply["content"].get(k) for k in ("cells", "revision", "ran")})

    async def post(self, user: str, worksheet: str, what: str) -> None:
        limit = self.settings["max_input"]
        if len(self.request.body) > limit:
            raise fail(413, f"a layout is over the limit of {limit} bytes")
        body = self.json_object('{"cells": [{"id", "type", "code"}, ...]}')
        saved: SavedLayouts = self.settings["saved_layouts"]
        if (user, worksheet) not in saved:
            charge(self, self.visitor)
        content = {"cells": body.get("cells")}
        if "base" in body:
            content["base"] = body["base"]
        address = check_address(user, worksheet, what)
        try:
            reply = await self.ask(mt.WORKSHEET_LAYOUT_REQUEST, content, address)
        except HTTPError as e:
            if e.status_code != 409 or body.get("on_conflict") != REPORT:
                raise
            stored = await self.ask(mt.WORKSHEET_LAYOUT_GET_REQUEST, {}, address)
            gone = stored["content"].get("cells") is None
            return self.write_json(200, {"saved": False, "error": e.reason,
                                         "conflict": "deleted" if gone else "changed"})
        saved.add((user, worksheet))
        self.write_json(200, {k: reply["content"].get(k) for k in ("cells", "revision")})


ROUTES = [(r"/home/([^/]+)/([^/]+)/(layout)", LayoutHandler)]

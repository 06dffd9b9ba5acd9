"""``GET /home/USER/WORKSHEET/notebook.ipynb``: the worksheet as a Jupyter notebook
(nbformat 4), to download and open in Jupyter. The broker makes it from the worksheet's
layout and its cells' stored output (:mod:`broker.notebook`); only the worksheet's user may
read it, as for its cells (the path has three parts, so the cell checks apply).
"""

from __future__ import annotations

import json
import re
import urllib.parse

from protocol import msgtypes as mt

from .base import BaseHandler, check_address
from .outbox import write_paced


class NotebookHandler(BaseHandler):
    """``GET`` -> the notebook's JSON, as an attachment named ``WORKSHEET.ipynb``."""

    async def get(self, user: str, worksheet: str, what: str) -> None:
        reply = await self.ask(mt.WORKSHEET_NOTEBOOK_REQUEST, {},
                               check_address(user, worksheet, what))
        name = f"{worksheet}.ipynb"
        plain = re.sub(r"[^A-Za-z0-9._-]", "_", name)  # for clients that know no filename*
        self.set_header("Content-Type", "application/x-ipynb+json")
        self.set_header("Content-Disposition", f"attachment; filename=\"{plain}\"; "
                        f"filename*=UTF-8''{urllib.parse.quote(name, safe='')}")
        body = json.dumps(reply["content"]["notebook"], indent=1, ensure_ascii=False).encode()
        del reply  # held once, as bytes, while the client takes it (as /update does)
        await write_paced(self, body, self.settings["client_stall"])


ROUTES = [(r"/home/([^/]+)/([^/]+)/(notebook\.ipynb)", NotebookHandler)]

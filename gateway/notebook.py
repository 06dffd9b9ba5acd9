"""``GET /home/USER/WORKSHEET/notebook.ipynb``: the worksheet as a Jupyter notebook
(nbformat 4), to download and open in Jupyter. The broker makes it from the worksheet's
layout and its cells' stored output (:mod:`broker.notebook`) and sends its JSON as it is to
be downloaded, with the length and SHA-256 the gateway checks (on a thread: the loop serves
everyone else meanwhile); only the worksheet's user may read it, as for its cells (the path
has three parts, so the cell checks apply). A download counts against ``--rate``, as a
request that runs code does: building one costs the broker as much as a cell.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import urllib.parse

from protocol import msgtypes as mt

from .base import BaseHandler, check_address, fail
from .outbox import write_paced


class NotebookHandler(BaseHandler):
    """``GET`` -> the notebook's JSON, as an attachment named ``WORKSHEET.ipynb``."""

    costly = True

    async def get(self, user: str, worksheet: str, what: str) -> None:
        # On the connection for big answers (gateway/bus.py): a notebook may be megabytes.
        reply = await self.ask(mt.WORKSHEET_NOTEBOOK_REQUEST, {},
                               check_address(user, worksheet, what), bulk=True)
        buffers, said = reply.get("buffers") or [], reply["content"]
        del reply  # held once, as bytes, while the client takes it (as /update does)
        body: bytes = buffers[0] if len(buffers) == 1 else b""
        digest = await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
        if said.get("bytes") != len(body) or said.get("sha256") != digest:
            raise fail(502, "the broker's notebook arrived damaged; download it again")
        name = f"{worksheet}.ipynb"
        plain = re.sub(r"[^A-Za-z0-9._-]", "_", name)  # for clients that know no filename*
        self.set_header("Content-Type", "application/x-ipynb+json")
        self.set_header("Content-Disposition", f"attachment; filename=\"{plain}\"; "
                        f"filename*=UTF-8''{urllib.parse.quote(name, safe='')}")
        await write_paced(self, body, self.settings["client_stall"])


ROUTES = [(r"/home/([^/]+)/([^/]+)/(notebook\.ipynb)", NotebookHandler)]

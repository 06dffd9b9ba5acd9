"""``POST /home/USER/WORKSHEET/CELL/complete`` and ``…/inspect``: the session's completions
and its help on a name (Shift+Tab) over HTTP, for a page that long-polls (no WebSocket gets
through) as for one on ``/ws``. What is said below of a completion holds for both.

A completion is asked of the worksheet's session like a client's comm message
(:mod:`broker.comms`); the session's ``complete_reply`` is output that names the request
(``metadata.cellbus.reply_to``), so this handler listens to the worksheet's output before it
asks and answers with that reply's content: ``{"session": true, "matches", "cursor_start",
"cursor_end", ...}``. A worksheet that runs no session (the broker's 409) is answered 200
``{"session": false, ...}`` with no matches, so the page starts one (an evaluate of
nothing, cellbus.js channelstart.js) and asks again, and its console shows no error; a
reply that does not come within :data:`COMPLETE_WAIT` seconds (the session busy with a long
cell) is answered as a session that knows nothing. It counts against ``--rate`` as the
WebSocket's completions do.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tornado.web import HTTPError

from protocol import msgtypes as mt
from protocol.queries import unanswered
from protocol.wire import Message

from .base import BaseHandler, check_address, fail
from .cells import TooLarge, complete_content, inspect_content, within_limit

#: Seconds the session's reply is waited for (cellbus.js waits as long on the WebSocket).
COMPLETE_WAIT = 5.0


#: The query each route asks, and how its body becomes the request's content.
CONTENTS = {mt.COMPLETE_REQUEST: complete_content, mt.INSPECT_REQUEST: inspect_content}


class CompleteHandler(BaseHandler):
    """``POST {"code", "cursor_pos"}`` -> the session's ``complete_reply`` content (or
    ``inspect_reply``'s, for ``…/inspect``), with ``session`` (false: the worksheet runs
    none, and nothing was asked)."""

    costly = True

    def initialize(self, query: str = mt.COMPLETE_REQUEST) -> None:
        self.query = query

    async def post(self, user: str, worksheet: str, cell_id: str) -> None:
        address = check_address(user, worksheet, cell_id)
        query, reply_type = self.query, mt.QUERY_REPLIES[self.query]
        try:
            content = CONTENTS[query](self.json_object('{"code": "...", "cursor_pos": N}'))
            within_limit(content["code"], self.settings["max_input"])
        except TooLarge as e:
            raise fail(413, str(e)) from None
        except ValueError as e:
            raise fail(400, str(e)) from None
        header = self.link.session.msg_header(query)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        def heard(msg: Message) -> None:
            asker = (msg["metadata"].get("cellbus") or {}).get("reply_to")
            if (msg["msg_type"] == reply_type and isinstance(asker, dict)
                    and asker.get("msg_id") == header["msg_id"] and not answer.done()):
                answer.set_result(msg["content"])

        self.link.listen((user, worksheet), heard)  # before asking: the reply may come first
        try:
            try:
                await self.ask(query, content, address, header=header)
            except HTTPError as e:
                if e.status_code != 409:
                    raise
                return self.write_json(200, {"session": False, **unanswered(query, content)})
            try:
                reply = await asyncio.wait_for(answer, COMPLETE_WAIT)
            except asyncio.TimeoutError:
                reply = unanswered(query, content)
        finally:
            self.link.unlisten((user, worksheet), heard)
        self.write_json(200, {**reply, "session": True})


ROUTES: list[Any] = [(r"/home/([^/]+)/([^/]+)/([^/]+)/complete", CompleteHandler),
                    (r"/home/([^/]+)/([^/]+)/([^/]+)/inspect", CompleteHandler,
                     {"query": mt.INSPECT_REQUEST})]

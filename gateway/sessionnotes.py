"""``GET /home/U/W/session?since=SEQ&session=ID&wait=S``: what a worksheet's session feed
says of the session itself, for a page that long-polls (no WebSocket gets through).

A page subscribed over the WebSocket hears two kinds of note on the worksheet's feed: the
broker's ``session_closed`` (the session ended, and why: broker/closures.py) and the idle
statuses that carry the device's idle timeout (``metadata.cellbus.idle_timeout``), from
which it warns before the session is ended. Over HTTP a cell's ``/update`` carries neither,
so the page asks here: the answer is ``{"session", "seq", "messages", "more"}``, the notes
of the worksheet's current session after ``since`` (as the WebSocket shows them) and the
``execute_input`` of each run started in it (by which the page follows another tab's or
client's runs, as the WebSocket's feed lets it: channelin.js), ``seq``
the last seq read, and ``more`` if the feed goes on past what one answer reads. ``session``
(the one the page knows) makes an answer about another session start from its seq 1, as a
subscription does. An answer says ``lost`` (``session``, ``through``, ``why``) when the
store, restored from an older copy, lacks output of the page's session up to its ``since``,
as a WebSocket's ``subscribe_reply`` does (gateway/ws.py). With ``wait`` an answer with no
note waits up to that many seconds for the worksheet's next message. Each page of the feed
read for it costs the client's ``--rate`` what it carried (gateway/bigreads.py); with its
bucket empty the read is refused (429 with Retry-After), or ends early with ``more`` if it
read something already.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from protocol import msgtypes as mt
from protocol import outputwords
from protocol.wire import Message

from .base import BaseHandler, check_address, fail
from .bigreads import PageTurn
from .cells import MAX_WAIT, CellWatch, number_word
from .guard import over_rate, still_admitted
from .subscription import to_json

#: Replay pages one answer reads at most (each up to the broker's 1,000 messages).
PAGES = 8


def is_note(msg: Message) -> bool:
    """Whether the page's session bar takes ``msg``: a session's end, or an idle status
    with the device's idle timeout (gateway/static/cellbus/channelin.js _sessionNote)."""
    facts = msg["metadata"].get("cellbus") or {}
    return msg["msg_type"] == mt.SESSION_CLOSED or (
        isinstance(facts.get("idle_timeout"), (int, float))
        and not isinstance(facts.get("idle_timeout"), bool))


def as_sent(msg: Message) -> dict[str, Any] | None:
    """``msg`` as an answer carries it (JSON), if it is a note or a run's start. A run's
    code is left out (``null``): the page reads it from the cell's ``/update`` as it follows
    the run, and an answer that reads a long session from its start would hold the code of
    every run in it (up to 8,000, each up to ``--max-input``)."""
    if msg["msg_type"] == mt.EXECUTE_INPUT:
        sent = json.loads(to_json(msg))
        sent["content"]["code"] = None
        return sent
    return json.loads(to_json(msg)) if is_note(msg) else None


class SessionNotesHandler(BaseHandler):
    """The worksheet's session notes after ``since`` (see the module docstring)."""

    async def get(self, user: str, worksheet: str, what: str) -> None:
        # (three path parts, as a cell's: BaseHandler.prepare checks the visitor may use
        # ``user``'s worksheets, as for the layout's)
        address = check_address(user, worksheet, "-")
        since, wait = self._number("since", int), min(self._number("wait", float), MAX_WAIT)
        known = self.get_query_argument("session", None) or None
        watch: CellWatch = self.settings["watch"]
        deadline = time.monotonic() + wait
        with watch.poll():
            while True:
                event = watch.watch(address[:2])
                try:
                    answer = await self._read(address, since, known)
                    left = deadline - time.monotonic()
                    if answer["messages"] or answer["more"] or "lost" in answer or (
                            left <= 0 or watch.stopping) or (
                            answer["session"] != known and known is not None):
                        break
                    since, known = answer["seq"], answer["session"]
                    try:
                        await asyncio.wait_for(event.wait(), left)
                    except asyncio.TimeoutError:
                        pass
                finally:
                    watch.unwatch(address[:2], event)
            if wait:  # its token may have been removed meanwhile
                await still_admitted(self, self.visitor)
            self.write_json(200, answer)

    async def _read(self, address: tuple[str, str, str], since: int, known: str | None
                    ) -> dict[str, Any]:
        """Up to :data:`PAGES` pages of the feed after ``since``, its notes kept."""
        notes: list[Any] = []
        session, seq, more = known, since, False
        lost: dict[str, Any] = {}
        turn: PageTurn = self.settings["page_turn"]
        for _ in range(PAGES):
            if (wait := turn.due(self.visitor.key)) is not None:  # its reader's bucket is empty
                if seq == since and session == known:
                    raise over_rate(self, wait)
                more = True  # what was read so far; the client asks again
                break
            # One page of a feed taken at a time, and paid for (gateway/bigreads.py).
            async with turn.take(self.visitor.key):
                reply = await self.ask(mt.SESSION_REPLAY_REQUEST, {"since": seq,
                                                                   "limit": 1000}, address)
                content = reply["content"]
                turn.paid(self.visitor.key, content)
                if content.get("lost") and content["session"] == known and seq == since:
                    lost = {"lost": outputwords.lost(known, content["lost"])}
                if content["session"] != session:
                    if content["session"] is None:
                        return {"session": None, "seq": 0, "messages": [], "more": False}
                    if seq and session is not None:  # another session: from its start
                        session, seq = content["session"], 0
                        continue
                    session = content["session"]
                for msg in content["messages"]:
                    seq = max(seq, msg["metadata"]["cellbus"]["seq"])
                    sent = as_sent(msg)
                    if sent is not None:
                        notes.append(sent)
            more = bool(content["more"])
            if not more:
                break
        return {"session": session, "seq": seq, "messages": notes, "more": more, **lost}

    def _number(self, name: str, kind: type) -> Any:
        raw = self.get_query_argument(name, None) or "0"  # empty: as absent (?since=)
        try:
            value = kind(raw)
        except ValueError:
            raise fail(400, f"{name} must be a {number_word(kind)}") from None
        if not 0 <= value <= mt.MAX_SEQ:
            raise fail(400, f"{name} must be a number from 0")
        return value


ROUTES = [(r"/home/([^/]+)/([^/]+)/(session)", SessionNotesHandler)]

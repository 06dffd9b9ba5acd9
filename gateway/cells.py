"""The seed's HTTP API for cells: evaluate, update (long-poll), interrupt, restart, files,
and the answer to a prompt (input)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from tornado.web import HTTPError

from protocol import msgtypes as mt
from protocol.asked import Asked, BadLimits, parse
from protocol.wire import Message

from . import bigreads, guard, heap
from .base import BaseHandler, check_address, fail
from .finished import FinishedAnswers
from .formbody import load_body, reads_as_form
from .jsonbody import is_integer
from .kernels import asked_kernel
from .outbox import write_paced

#: Longest long-poll wait, in seconds.
MAX_WAIT = 60.0
FINAL = ("done", "error")
Address = tuple[str, str, str]


class CellWatch:
    """Wakes long-polls when output for their cell arrives on the broker's feed; one
    watching a whole worksheet (an address of (user, worksheet), gateway/sessionnotes.py)
    wakes at anything of the worksheet's."""

    def __init__(self) -> None:
        self.waiting: defaultdict[tuple[str, ...], set[asyncio.Event]] = defaultdict(set)
        #: The gateway stops: a long-poll answers now with what it has (:meth:`stop`).
        self.stopping = False
        #: Long-polls under way (asking, waiting, or writing their answer).
        self.polls = 0
        self._quiet = asyncio.Event()

    def __call__(self, msg: Message) -> None:
        facts = msg["metadata"].get("cellbus") or {}
        address = (facts.get("user"), facts.get("worksheet"), facts.get("cell_id"))
        for key in (address, address[:2]):
            for event in self.waiting.get(key, ()):  # type: ignore[arg-type]
                event.set()

    def watch(self, address: tuple[str, ...]) -> asyncio.Event:
        event = asyncio.Event()
        self.waiting[address].add(event)
        return event

    def unwatch(self, address: tuple[str, ...], event: asyncio.Event) -> None:
        events = self.waiting.get(address)
        if events is not None:
            events.discard(event)
            if not events:
                del self.waiting[address]

    @contextlib.contextmanager
    def poll(self) -> Iterator[None]:
        """Around one long-poll, from its first question to its answer written, so that
        :meth:`stop` can wait for it."""
        self.polls += 1
        try:
            yield
        finally:
            self.polls -= 1
            if not self.polls:
                self._quiet.set()

    async def stop(self, timeout: float) -> bool:
        """Wake every long-poll, which then answers with the document as it stands (as at
        a change: its client asks again, of a gateway still serving), and wait up to
        ``timeout`` for their answers to be written; False if some were not. Closing the
        connections under waiting polls answered nothing at all (logged as 500)."""
        self.stopping = True
        for events in self.waiting.values():
            for event in events:
                event.set()
        if not self.polls:
            return True
        self._quiet.clear()
        try:
            await asyncio.wait_for(self._quiet.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True


def interact_content(body: dict[str, Any]) -> dict[str, Any]:
    """The content of an ``interact_request`` made from a client's: only the fields it has
    (``interact_id``, ``values``, ``state``; the broker checks their values)."""
    return {k: body.get(k) for k in ("interact_id", "values", "state")}


def complete_content(body: dict[str, Any]) -> dict[str, Any]:
    """The content of a ``complete_request`` made from a client's ``{"code", "cursor_pos"}``
    (the cursor in code points, as Jupyter counts it); raises ``ValueError`` otherwise (the
    broker bounds its size)."""
    code, at = body.get("code"), body.get("cursor_pos")
    if not isinstance(code, str) or not isinstance(at, int) or not is_integer(at) or not (
            0 <= at <= len(code)):
        raise ValueError("a completion needs code (a string) and cursor_pos within it")
    return {"code": code, "cursor_pos": at}


def inspect_content(body: dict[str, Any]) -> dict[str, Any]:
    """The content of an ``inspect_request`` made from a client's ``{"code", "cursor_pos",
    "detail_level"?}`` (0, the default, or 1, as Jupyter's); ``ValueError`` otherwise."""
    level = body.get("detail_level", 0)
    if level not in (0, 1) or isinstance(level, bool):
        raise ValueError("detail_level must be 0 or 1")
    return {**complete_content(body), "detail_level": level}


def input_content(body: dict[str, Any]) -> dict[str, Any]:
    """The content of an ``input_reply`` made from a client's ``{"value": "...", "prompt":
    SEQ?}`` (``prompt``: the seq of the ``input_request`` it answers; an answer that names
    one never answers another); raises ``ValueError`` for a value that is no string or a
    prompt that is no seq, and :class:`TooLarge` for a value past
    :data:`protocol.msgtypes.MAX_INPUT_REPLY` bytes."""
    value, prompt = body.get("value"), body.get("prompt")
    if not isinstance(value, str):
        raise ValueError("the answer must be {\"value\": \"...\"}, a string")
    if len(value.encode("utf-8", "surrogatepass")) > mt.MAX_INPUT_REPLY:
        raise TooLarge(f"the answer is over the limit of {mt.MAX_INPUT_REPLY} bytes")
    if prompt is None:
        return {"value": value}
    if not is_integer(prompt) or not 0 < prompt <= mt.MAX_SEQ:
        raise ValueError("prompt must be the seq of the input_request the answer is for")
    return {"value": value, "prompt": prompt}


class TooLarge(ValueError):
    """A client's value is over its size limit (HTTP 413)."""


def within_limit(code: str | None, limit: int) -> str | None:
    """``code`` if it is at most ``limit`` UTF-8 bytes (the gateway's ``--max-input``), else
    :class:`TooLarge` with the words every way in says it: an evaluate's 413, and the refusal
    of a WebSocket's execute or completion (ws.py) and of a Jupyter client's execute."""
    if code is not None and len(code.encode("utf-8", "surrogatepass")) > limit:
        raise TooLarge(f"input is over the limit of {limit} bytes")
    return code


def execute_content(code: str | None, limits: Asked | None = None) -> dict[str, Any]:
    """An ``execute_request``'s content; ``limits``: the request's own (protocol.asked).
    ``allow_stdin``: cellbus's own clients answer prompts (the page, ``POST …/input``)."""
    content: dict[str, Any] = {"silent": False, "store_history": True, "user_expressions": {},
                               "allow_stdin": True, "stop_on_error": True}
    if code is not None:
        content["code"] = code
    if limits:
        content["limits"] = limits
    return content


class EvaluateHandler(BaseHandler):
    """``POST …/evaluate``: JSON ``{"input": ..., "kernel": ..., "limits": ...}`` or form
    ``input`` (and ``kernel``); no input re-evaluates. The kernel counts only in a worksheet's
    first evaluate (see broker/kernels.py); ``limits`` may be tighter than the device's (see
    :mod:`protocol.asked`)."""

    costly = True
    asked: Asked | None = None

    async def post(self, user: str, worksheet: str, cell_id: str) -> None:
        address = check_address(user, worksheet, cell_id)
        code, kernel = self._input()
        try:
            content = execute_content(within_limit(code, self.settings["max_input"]),
                                      self.asked)
        except TooLarge as e:
            raise fail(413, str(e)) from None
        if kernel:
            content["kernel"] = kernel
        reply = await self.ask(mt.EXECUTE_REQUEST, content, address)
        c = reply["content"]
        self.write_json(202, {"cell_id": cell_id, "status": c["status"], "msg_id": c["msg_id"]})

    def _input(self) -> tuple[str | None, str | None]:
        """The body's input and kernel (None: not given)."""
        if not self.request.body:
            return None, None
        if reads_as_form(self):
            values = self.request.body_arguments.get("input")
            return (values[0].decode("utf-8", "replace") if values else None,
                    asked_kernel(self, None))
        body = self.json_object('{"input": "..."}')
        code = body.get("input")
        if code is not None and not isinstance(code, str):
            raise fail(400, "input must be a string")
        if "limits" in body:
            try:
                self.asked = parse(body["limits"])
            except BadLimits as e:
                raise fail(400, str(e)) from None
        return code, asked_kernel(self, body)


def number_word(kind: type) -> str:
    """What a query argument of ``kind`` must be, in its error."""
    return "whole number" if kind is int else "number"


def said_of(content: dict[str, Any]) -> tuple[str, bool]:
    """The status of a ``cell_update_reply`` and whether it holds a change (output or a
    reset), in whichever form it came (broker/updates.py)."""
    doc = content.get("document")
    if isinstance(doc, dict):
        return doc["status"], bool(doc["output"] or doc["reset"])
    return content["status"], bool(content["changed"])


class UpdateHandler(BaseHandler):
    """``GET …/update[?since=SEQ][&wait=S]``: the cell's document, changed blocks after since.

    Idempotent and safe to retry. With ``wait``, an answer with nothing new waits up to that
    many seconds for the first change (new output, the end, or a reset) and answers at once;
    with ``wait`` and ``until=done`` it waits until the cell is done or failed (or ``wait``
    runs out), and answers everything that changed after ``since`` in one document.
    ``session`` (the document's, as the client last saw it) makes an answer about another
    session a ``reset`` (see :meth:`broker.cells.CellView.document`).
    """

    async def get(self, user: str, worksheet: str, cell_id: str) -> None:
        address = check_address(user, worksheet, cell_id)
        since = self._number("since", 0, int)
        wait = min(self._number("wait", 0.0, float), MAX_WAIT)
        until = self.get_query_argument("until", None)
        if until not in (None, "change", "done"):
            raise fail(400, "until must be change (the default: the first change) or done")
        # A big document is withheld while the poll waits (broker/updates.py): it is asked
        # for once, counted against --rate, when it is the answer.
        query: dict[str, Any] = {"since": since, "big": False}
        if session := self.get_query_argument("session", None):
            query["session"] = session
        watch: CellWatch = self.settings["watch"]
        finished: FinishedAnswers = self.settings["finished"]
        deadline = time.monotonic() + wait
        with watch.poll():
            while True:
                event = watch.watch(address)
                try:
                    reply = await self._ask(finished, query, address)
                    status, changed = said_of(reply["content"])
                    left = deadline - time.monotonic()
                    if status in FINAL or left <= 0 or watch.stopping or (
                            changed and until != "done"):
                        break
                    try:
                        await asyncio.wait_for(event.wait(), left)
                    except asyncio.TimeoutError:
                        pass
                finally:
                    watch.unwatch(address, event)
            if wait:  # its token may have been removed meanwhile
                await guard.still_admitted(self, self.visitor)
            if reply["content"].get("withheld"):  # the answer: counted, and in turn
                body = await bigreads.document(self, query, address, reply["content"])
            else:
                body = await bigreads.body_of(reply)
            del reply  # the answer is held once, as bytes, while the client takes it
            await write_paced(self, body, self.settings["client_stall"])
        heap.trim_soon(len(body))

    async def _ask(self, finished: FinishedAnswers, query: dict[str, Any],
                   address: Address) -> Message:
        """The broker's answer to ``query``, or the one kept of a finished cell (a flood of
        re-reads costs no round trip each, and a big one's refusal none: gateway/finished.py)."""
        since, session = query["since"], query.get("session")
        if (content := finished.get(address, since, session)) is not None:
            return {"content": content, "buffers": []}
        changes = finished.seen(address)
        reply = await self.ask(mt.CELL_UPDATE_REQUEST, query, address)
        finished.keep(address, since, session, changes, reply["content"])
        return reply

    def _number(self, name: str, default: Any, kind: type) -> Any:
        raw = self.get_query_argument(name, None)
        if not raw:  # absent, or empty as the README's table writes it (?since=&wait=)
            return default
        try:
            value = kind(raw)
        except ValueError:
            raise fail(400, f"{name} must be a {number_word(kind)}") from None
        if value < 0 or value != value:
            raise fail(400, f"{name} must not be negative")
        if value > mt.MAX_SEQ:
            raise fail(400, f"{name} is too large (at most {mt.MAX_SEQ})")
        return value


class InteractHandler(BaseHandler):
    """``POST …/interact``: ``{"interact_id", "values", "state"}`` re-runs an interact."""

    costly = True

    async def post(self, user: str, worksheet: str, cell_id: str) -> None:
        address = check_address(user, worksheet, cell_id)
        try:
            body = load_body(self, json_fields=("values", "state"))
        except ValueError as e:
            raise fail(400, f"the body cannot be used: {e}; send {{\"interact_id\", "
                            "\"values\", \"state\"}") from None
        reply = await self.ask(mt.INTERACT_REQUEST, interact_content(body), address)
        c = reply["content"]
        self.write_json(202, {"cell_id": cell_id, "status": c["status"], "msg_id": c["msg_id"]})


#: ``?on_conflict=report``: a 409 (a prompt answered already, a run that ended) is answered
#: 200 ``{"conflict": true, "error"}`` instead, as a layout save's (gateway/layouts.py): the
#: worksheet page meets these in ordinary use (another tab answered; Stop as the run ended),
#: and a browser logs every 4xx answer as a console error.
REPORT = "report"


class ConflictReported(BaseHandler):
    """A handler whose 409 the client may ask to have reported (:data:`REPORT`)."""

    async def ask_or_report(self, msg_type: str, content: dict[str, Any],
                            address: Address) -> bool:
        """Ask the broker; False if it refused with 409 and this request asked for such a
        refusal to be reported (then it is answered, 200)."""
        try:
            await self.ask(msg_type, content, address)
        except HTTPError as e:
            if e.status_code != 409 or self.get_query_argument("on_conflict", "") != REPORT:
                raise
            self.write_json(200, {"cell_id": address[2], "conflict": True, "error": e.reason})
            return False
        return True


class InputHandler(ConflictReported):
    """``POST …/input``: ``{"value": "..."}`` answers the prompt (``input()``) the cell's
    run waits on; 409 if it waits on none (or reported, :data:`REPORT`). The value is not
    stored (a password must not be)."""

    async def post(self, user: str, worksheet: str, cell_id: str) -> None:
        address = check_address(user, worksheet, cell_id)
        try:
            content = input_content(load_body(self, json_fields=("prompt",)))
        except TooLarge as e:
            raise fail(413, str(e)) from None
        except ValueError as e:
            raise fail(400, f"the body cannot be used: {e}") from None
        if await self.ask_or_report(mt.INPUT_REPLY, content, address):
            self.write_json(202, {"cell_id": cell_id, "status": "answered"})


class InterruptHandler(ConflictReported):
    """``POST …/interrupt``: KeyboardInterrupt in the cell's running code; 409 for a cell
    not running (or reported, :data:`REPORT`)."""

    async def post(self, user: str, worksheet: str, cell_id: str) -> None:
        address = check_address(user, worksheet, cell_id)
        if await self.ask_or_report(mt.INTERRUPT_REQUEST, {}, address):
            self.write_json(202, {"cell_id": cell_id, "status": "interrupting"})


class RestartHandler(BaseHandler):
    """``POST …/restart``: the worksheet's next request gets a fresh session (its variables
    are gone); the old session's worker is ended."""

    costly = True

    async def post(self, user: str, worksheet: str, cell_id: str) -> None:
        address = check_address(user, worksheet, cell_id)
        reply = await self.ask(mt.RESTART_REQUEST, {}, address)
        self.write_json(202, {"cell_id": cell_id, "status": "restarted",
                              "closed": reply["content"].get("closed")})


class FileHandler(BaseHandler):
    """``GET …/files/SEQ/NAME``: a file the cell's code wrote, served inert (sandboxed)."""

    async def get(self, user: str, worksheet: str, cell_id: str, seq: str, name: str) -> None:
        address = check_address(user, worksheet, cell_id)
        query = {"seq": int(seq), "name": name, "big": False}
        reply = await self.ask(mt.FILE_REQUEST, query, address)
        if reply["content"].get("withheld"):  # a big file: as a big /update document
            reply = await bigreads.fetch(self, mt.FILE_REQUEST, query, address)
        self.set_header("Content-Type", reply["content"]["mime"])
        self.set_header("Content-Security-Policy", "sandbox")  # user HTML runs no script here
        self.set_header("Content-Disposition", "inline")
        self.finish(reply["buffers"][0])

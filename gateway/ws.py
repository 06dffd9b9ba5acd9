"""``WS /ws``: JSON Jupyter messages both ways, resumable with ``since``.

Client to gateway (``header.msg_type`` or ``msg_type``; the cell or worksheet in
``metadata.cellbus`` or, for subscriptions, in ``content``)::

    subscribe_request  {"user", "worksheet", "since": SEQ, "session": ID?}
    execute_request    {"code"?: ...}          metadata.cellbus = {user, worksheet, cell_id}
    interact_request   {"interact_id", "values", "state"}   same metadata
    interrupt_request  {}                      same metadata
    restart_request    {}                      same metadata: the worksheet's next request
                                               gets a fresh session

Gateway to client: replies (``subscribe_reply``, ``request_accepted``; ``ok: false`` with
``http_status`` and ``error`` on refusal, and ``retry_after`` seconds on a 503) and every
output message of subscribed worksheets, with ``metadata.cellbus.seq``. A subscription
replays what the store has after ``since`` and then goes live, without gaps or duplicates:
live messages wait while the replay runs, each ``seq`` is delivered once, and a gap seen on
the live feed is filled from the store (the ZeroMQ Guide's Clone pattern, client side). A new
session for the worksheet (a restart) starts again from its seq 1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
from typing import Any

from tornado.websocket import WebSocketClosedError, WebSocketHandler

from protocol import msgtypes as mt
from protocol.wire import Message

from .base import MAX_NAME
from .bus import BrokerLink, BrokerUnavailable
from .cells import execute_content

log = logging.getLogger("cellbus.gateway")
SUBSCRIBE_REQUEST = "subscribe_request"
SUBSCRIBE_REPLY = "subscribe_reply"


def to_json(msg: Message) -> str:
    """A bus message as the browser sees it: buffers travel by URL instead."""
    facts = msg["metadata"].get("cellbus") or {}
    data = msg["content"].get("data")
    if isinstance(data, dict) and isinstance(ref := data.get(mt.FILE_MIME), dict) and "seq" in facts:
        parts = [facts.get(k, "") for k in ("user", "worksheet", "cell_id")]
        base = "/home/" + "/".join(urllib.parse.quote(str(p), safe="") for p in parts)
        facts["url"] = f"{base}/files/{facts['seq']}/{urllib.parse.quote(str(ref.get('name')))}"
    return json.dumps({k: msg[k] for k in ("header", "msg_id", "msg_type", "parent_header",
                                           "metadata", "content")}, default=str)


class Subscription:
    """One worksheet's output stream for one socket, in seq order, each seq once."""

    def __init__(self, socket: SocketHandler, user: str, worksheet: str, since: int,
                 session: str | None) -> None:
        self.socket, self.user, self.worksheet = socket, user, worksheet
        self.session, self.last = session, since
        self.replaying = False
        self.held: list[Message] = []
        self.task: asyncio.Future[None] | None = None

    def offer(self, msg: Message) -> None:
        facts = msg["metadata"]["cellbus"]
        if self.replaying:
            self.held.append(msg)
        elif facts.get("session") == self.session and facts.get("seq", 0) > self.last + 1:
            log.info("gateway: subscription to %s/%s is behind (seq %d, feed at %d); "
                     "catching up from the store", self.user, self.worksheet, self.last,
                     facts.get("seq", 0))
            self.held.append(msg)
            self.catch_up()  # a gap on the live feed: fill it from the store
        else:
            self.deliver(msg)

    def deliver(self, msg: Message) -> None:
        facts = msg["metadata"]["cellbus"]
        if facts.get("session") != self.session:
            self.session, self.last = facts.get("session"), 0
        seq = facts.get("seq", 0)
        if seq <= self.last:
            return
        self.last = seq
        self.socket.send(to_json(msg))

    def catch_up(self) -> None:
        """Replay from the store in the background (the task is kept, so it is not
        garbage-collected mid-replay)."""
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self.replay())

    async def replay(self) -> None:
        if self.replaying:
            return
        self.replaying = True
        try:
            while True:
                reply = await self.socket.link.request(
                    mt.SESSION_REPLAY_REQUEST, {"since": self.last},
                    (self.user, self.worksheet, "-"))
                content = reply["content"]
                if not content.get("ok"):
                    raise BrokerUnavailable(str(content.get("error")))
                if content["session"] != self.session:
                    if self.session is not None and self.last:  # another session: from its start
                        self.session, self.last = content["session"], 0
                        continue
                    self.session = content["session"]
                for msg in content["messages"]:
                    self.deliver(msg)
                if not content["more"]:
                    break
        finally:
            self.replaying = False
            held, self.held = sorted(self.held, key=lambda m: m["metadata"]["cellbus"]["seq"]), []
            for msg in held:
                self.deliver(msg)


class SocketHandler(WebSocketHandler):
    @property
    def link(self) -> BrokerLink:
        return self.settings["link"]

    def open(self, *args: Any) -> None:
        self.set_nodelay(True)
        self.subs: dict[tuple[str, str], Subscription] = {}
        self.link.listeners.add(self.on_output)

    def on_close(self) -> None:
        self.link.listeners.discard(self.on_output)

    def on_output(self, msg: Message) -> None:
        if msg["msg_type"] == mt.SEQ_BEACON:
            return self.on_beacon(msg["content"].get("sessions"))
        facts = msg["metadata"].get("cellbus") or {}
        sub = self.subs.get((facts.get("user"), facts.get("worksheet")))
        if sub is not None:
            sub.offer(msg)

    def on_beacon(self, sessions: Any) -> None:
        """A subscription behind the broker's last seq for its session lost messages on the
        feed (a burst past the high-water mark): fetch them from the store."""
        if not isinstance(sessions, dict):
            return
        for sub in self.subs.values():
            seq = sessions.get(sub.session)
            if isinstance(seq, int) and seq > sub.last and not sub.replaying:
                log.info("gateway: subscription to %s/%s is behind (seq %d, broker has %d); "
                         "catching up from the store", sub.user, sub.worksheet, sub.last, seq)
                sub.catch_up()

    def send(self, text: str) -> None:
        try:
            self.write_message(text)
        except WebSocketClosedError:
            pass

    def reply(self, request: dict[str, Any], msg_type: str, content: dict[str, Any]) -> None:
        msg = self.link.session.msg(msg_type, content, parent=request.get("header") or {})
        self.send(json.dumps({k: msg[k] for k in ("header", "msg_id", "msg_type",
                                                  "parent_header", "metadata", "content")}))

    async def on_message(self, raw: str | bytes) -> None:
        try:
            request = json.loads(raw)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError:
            return self.reply({}, "error_reply", {"ok": False, "http_status": 400,
                                                  "error": "messages must be JSON objects"})
        header = request.get("header") if isinstance(request.get("header"), dict) else {}
        msg_type = header.get("msg_type") or request.get("msg_type")
        content = request.get("content") if isinstance(request.get("content"), dict) else {}
        try:
            if msg_type == SUBSCRIBE_REQUEST:
                await self._subscribe(request, content)
            elif msg_type in (mt.EXECUTE_REQUEST, mt.INTERRUPT_REQUEST, mt.RESTART_REQUEST,
                              mt.INTERACT_REQUEST):
                await self._forward(request, msg_type, content)
            else:
                raise ValueError(f"unknown msg_type {msg_type!r}")
        except ValueError as e:
            self.reply(request, f"{msg_type or 'error'}_reply".replace("_request_reply", "_reply"),
                       {"ok": False, "http_status": 400, "error": str(e)})
        except BrokerUnavailable as e:
            self.reply(request, "error_reply", {"ok": False, "http_status": 503, "error": str(e)})

    async def _subscribe(self, request: dict[str, Any], content: dict[str, Any]) -> None:
        user, worksheet = content.get("user"), content.get("worksheet")
        since, session = content.get("since", 0), content.get("session")
        if not (_name(user) and _name(worksheet)) or not isinstance(since, int) or since < 0:
            raise ValueError("subscribe_request needs user, worksheet and a non-negative since")
        sub = Subscription(self, user, worksheet, since, session if isinstance(session, str) else None)
        self.subs[(user, worksheet)] = sub
        await sub.replay()
        self.reply(request, SUBSCRIBE_REPLY, {"ok": True, "session": sub.session, "seq": sub.last})

    async def _forward(self, request: dict[str, Any], msg_type: str, content: dict[str, Any]) -> None:
        facts = (request.get("metadata") or {}).get("cellbus") or {}
        address = tuple(facts.get(k) for k in ("user", "worksheet", "cell_id"))
        if not all(_name(p) for p in address):
            raise ValueError("metadata.cellbus must name user, worksheet and cell_id")
        if msg_type == mt.EXECUTE_REQUEST:
            code = content.get("code")
            if code is not None and not isinstance(code, str):
                raise ValueError("code must be a string")
            content = execute_content(code)
        elif msg_type == mt.INTERACT_REQUEST:
            content = {k: content.get(k) for k in ("interact_id", "values", "state")}
        elif msg_type == mt.RESTART_REQUEST:
            content = {}
        header = {**request["header"]} if isinstance(request.get("header"), dict) else None
        if header is not None and not all(isinstance(header.get(k), str) for k in (
                "msg_id", "msg_type", "session", "username", "date", "version")):
            header = None
        reply = await self.link.request(msg_type, content, address, header=header)  # type: ignore[arg-type]
        self.reply(request, reply["msg_type"], reply["content"])


def _name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME

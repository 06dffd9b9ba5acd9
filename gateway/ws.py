"""``WS /ws``: JSON Jupyter messages both ways, resumable with ``since``.

Client to gateway (``header.msg_type`` or ``msg_type``; the cell or worksheet in
``metadata.cellbus`` or, for subscriptions, in ``content``)::

    subscribe_request  {"user", "worksheet", "since": SEQ, "session": ID?}
    execute_request    {"code"?: ..., "kernel"?: NAME}   metadata.cellbus = {user,
                                               worksheet, cell_id}
    interact_request   {"interact_id", "values", "state"}   same metadata
    interrupt_request  {}                      same metadata
    input_reply        {"value": "..."}        same metadata: answers the cell's prompt
                                               (an ``input_request`` in its output)
    restart_request    {}                      same metadata: the worksheet's next request
                                               gets a fresh session
    complete_request   {"code", "cursor_pos"}  same metadata: the session's completions
                                               come as its complete_reply (output, parented
                                               by the request), between busy and idle

Gateway to client: replies (``subscribe_reply``, ``request_accepted``; ``ok: false`` with
``http_status`` and ``error`` on refusal, and ``retry_after`` seconds on a 503 or a 429: each
message counts against ``--client-requests`` as an HTTP request does) and every
output message of subscribed worksheets, with ``metadata.cellbus.seq``. Code over
``--max-input`` (an execute's, a completion's) is refused with 413 and the words of HTTP's;
``subscribe_reply`` says ``max_input`` and ``max_message``, the largest message read: tornado
closes a socket that sends a longer one with 1009 (:func:`gateway.app.message_limit`), so
a client should not send it again (cellbus.js fails the request). A reply and the
request's output reach the gateway by different sockets (the broker's ROUTER and its PUB), so
a run's output may come before its ``request_accepted``: key output by ``parent_header``
(the client's own msg_id), as Jupyter clients do with shell replies and iopub. A subscription
replays what the store has after ``since`` and then goes live, without gaps or duplicates:
live messages wait while the replay runs, each ``seq`` is delivered once, and a gap seen on
the live feed is filled from the store (the ZeroMQ Guide's Clone pattern, client side;
:mod:`gateway.subscription`), and so is whatever a broker stored and died before publishing:
a seq beacon from another broker process than the one the subscription last read the store
from makes it read again. A new session for the worksheet (a restart) starts again from its
seq 1. A ``subscribe_reply`` says ``lost`` (``session``, ``through``, ``why``) when the store,
restored from a backup, lacks output of the client's session up to its ``since``, which the
client had seen: its new output follows all the same (:mod:`broker.store._sqlite_restore`);
a socket open across the restore gets the same as an ``output_lost`` message, before the
new output.

A client that does not read is closed with code 4008 (:data:`gateway.outbox.TOO_SLOW`) once
it leaves more than ``--client-buffer`` bytes unread; it reconnects and resumes by seq. A
replay from the store goes as fast as the client reads, so it never causes that close.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from tornado.websocket import WebSocketHandler, WebSocketProtocol

from protocol import msgtypes as mt
from protocol.address import is_name
from protocol.errors import ProtocolError
from protocol.wire import Message, utcnow_iso

from . import errors, follows, guard
from .auth import COOKIE
from .bus import BrokerUnavailable
from .cells import (TooLarge, complete_content, execute_content, input_content,
                    inspect_content, interact_content, within_limit)
from .hooks import Hooks
from .jsonbody import is_integer, load_json
from .oversize import ReadsOversized
from .outbox import Outbox
from .subscription import Subscription as Subscription, to_json as to_json
from .tokenwatch import TokenWatch

log = logging.getLogger("cellbus.gateway")
SUBSCRIBE_REQUEST = "subscribe_request"
SUBSCRIBE_REPLY = "subscribe_reply"
#: Longest header field (msg_id, session, ...) taken from a client; longer: a fresh header.
MAX_HEADER_FIELD = 256
#: Requests that make a session run code: counted by --rate.
COSTLY = frozenset({mt.EXECUTE_REQUEST, mt.INTERACT_REQUEST, mt.RESTART_REQUEST,
                    mt.COMPLETE_REQUEST, mt.INSPECT_REQUEST})


class SocketHandler(Hooks, WebSocketHandler):
    """One browser's socket. It is admitted like any request (:mod:`gateway.guard`: host,
    token); its origin must be this gateway's or an ``--allow-origin`` one, and with the
    sign-in cookie only this gateway's. It reaches only its user's worksheets."""

    visitor: guard.Visitor

    async def prepare(self) -> None:
        visitor = await guard.admit(self)
        if visitor is not None:
            self.visitor = visitor
            await guard.within_requests(self, visitor)  # a handshake is a request

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """tornado's handshake; a request that is no WebSocket handshake at all gets a JSON
        error like every other refusal (tornado answers those in plain text)."""
        headers = self.request.headers
        connection = [t.strip().lower() for t in headers.get("Connection", "").split(",")]
        if headers.get("Upgrade", "").lower() != "websocket" or "upgrade" not in connection:
            raise errors.fail(400, "this is the WebSocket endpoint: open it with a WebSocket "
                                   "handshake (Connection: Upgrade, Upgrade: websocket)")
        if not headers.get("Sec-Websocket-Key"):
            raise errors.fail(400, "the WebSocket handshake lacks Sec-WebSocket-Key")
        if headers.get("Sec-Websocket-Version") not in ("7", "8", "13"):
            self.set_header("Sec-WebSocket-Version", "7, 8, 13")
            raise errors.fail(426, "unsupported WebSocket version; use 13")
        await super().get(*args, **kwargs)

    def get_websocket_protocol(self) -> WebSocketProtocol | None:
        """tornado's protocol for version 13, failing unmasked client frames, and reading a
        message over the largest to its end before the 1009 close (gateway/oversize.py)."""
        protocol = super().get_websocket_protocol()
        if protocol is None:
            return None
        return ReadsOversized(self, False, protocol.params)  # type: ignore[attr-defined]

    def check_origin(self, origin: str) -> bool:
        """Called for cross-origin handshakes only (tornado 6.6)."""
        if self.visitor.via == COOKIE:
            return False  # a page of another origin must not ride this browser's cookie
        return guard.policy_of(self).origin_allowed(origin)

    def _refused(self, request: dict[str, Any], reply_type: str, user: str, worksheet: str,
                 cell_id: str | None = None, *, costly: bool = False) -> bool:
        """True if the request was answered with a refusal: one about another user's
        worksheet as if it did not exist (404), or one that runs code over the rate (429)."""
        if not guard.may_use(guard.policy_of(self), self.visitor, user):
            error = f"no cell {cell_id} in worksheet {worksheet}" if cell_id else \
                f"no worksheet {worksheet}"
            self.reply(request, reply_type, {"ok": False, "http_status": 404, "error": error})
            return True
        if costly:
            wait = guard.rate_wait(self, self.visitor)
            if wait is not None:
                self.reply(request, reply_type, {
                    "ok": False, "http_status": 429, "retry_after": wait,
                    "error": guard.too_many(self, wait)})
                return True
        return False

    def open(self, *args: Any) -> None:
        self.set_nodelay(True)
        self.subs: dict[tuple[str, str], Subscription] = {}
        self.outbox = Outbox(self, self.settings["client_buffer"], self._release)
        self.link.listen(None, self.on_output)  # seq beacons; outputs once subscribed
        self.token_watch = TokenWatch(self, self.visitor)  # closed once its token goes
        self.token_watch.start()

    def on_close(self) -> None:
        self.outbox.end()

    def _release(self) -> None:
        """The socket is done (closed by either side, or its client went away): it leaves
        nothing behind, no listener and no replay."""
        self.token_watch.stop()
        follows.give_back(self)
        self.link.unlisten(None, self.on_output)
        for worksheet, sub in self.subs.items():
            self.link.unlisten(worksheet, self.on_output)
            if sub.task is not None:
                sub.task.cancel()
        self.subs.clear()

    def on_output(self, msg: Message) -> None:
        if msg["msg_type"] == mt.SEQ_BEACON:
            return self.on_beacon(msg["content"].get("sessions"), msg["header"].get("session"))
        facts = msg["metadata"].get("cellbus") or {}
        sub = self.subs.get((facts.get("user", ""), facts.get("worksheet", "")))
        if sub is not None:
            sub.offer(msg)

    def on_beacon(self, sessions: Any, broker: Any) -> None:
        """A subscription behind the broker's last seq for its session lost messages on the
        feed (a burst past the high-water mark); one that read the store of another broker
        process may lack what that one stored and died before publishing: both catch up."""
        if not isinstance(sessions, dict):
            return
        for sub in self.subs.values():
            seq = sessions.get(sub.session)
            if not sub.replaying and ((isinstance(seq, int) and seq > sub.last) or
                                      broker != sub.broker):
                log.info("gateway: subscription to %s/%s is behind (seq %d, broker %s has %s); "
                         "catching up from the store", sub.user, sub.worksheet, sub.last,
                         broker, seq)
                sub.catch_up()

    def send(self, text: str) -> None:
        self.outbox.send(text)

    def reply(self, request: dict[str, Any], msg_type: str, content: dict[str, Any]) -> None:
        header = request.get("header")
        parent = {"header": header} if isinstance(header, dict) else {}
        msg = self.link.session.msg(msg_type, content, parent=parent)
        self.send(json.dumps({k: msg[k] for k in ("header", "msg_id", "msg_type",
                                                  "parent_header", "metadata", "content")}))

    async def on_message(self, raw: str | bytes) -> None:
        if self.outbox.closed:
            return  # closed by the gateway; the client has not closed its side yet
        if not await self.token_watch.valid():
            return  # its token was removed: the socket is being closed
        if (wait := await guard.held_back(self, self.visitor)) is not None:
            return self._too_many(raw, wait)
        try:
            request = load_json(raw)
            if not isinstance(request, dict):
                raise ValueError("it is not an object")
        except ValueError as e:
            return self.reply({}, "error_reply", {"ok": False, "http_status": 400,
                                                  "error": f"messages must be JSON objects: {e}"})
        header = given if isinstance(given := request.get("header"), dict) else {}
        msg_type = header.get("msg_type") or request.get("msg_type")
        content = given if isinstance(given := request.get("content"), dict) else {}
        try:
            if msg_type == SUBSCRIBE_REQUEST:
                await self._subscribe(request, content)
            elif msg_type in (mt.EXECUTE_REQUEST, mt.INTERRUPT_REQUEST, mt.RESTART_REQUEST,
                              mt.INTERACT_REQUEST, mt.INPUT_REPLY, mt.COMPLETE_REQUEST,
                              mt.INSPECT_REQUEST):
                await self._forward(request, msg_type, content)
            else:
                raise ValueError(f"unknown msg_type {msg_type!r}")
        except (ValueError, ProtocolError) as e:  # ProtocolError: the bus cannot carry it
            kind = msg_type if isinstance(msg_type, str) and 0 < len(msg_type) <= 64 else "error"
            self.reply(request, mt.REQUEST_ACCEPTED if kind == mt.INPUT_REPLY else
                       f"{kind}_reply".replace("_request_reply", "_reply"),
                       {"ok": False, "http_status": 413 if isinstance(e, TooLarge) else 400,
                        "error": str(e)})
        except BrokerUnavailable as e:
            self.reply(request, "error_reply", {"ok": False, "http_status": 503, "error": str(e)})

    def _too_many(self, raw: str | bytes, wait: int) -> None:
        """A message past ``--client-requests``: refused in the words HTTP uses, as the
        reply its kind gets. Each message may be a round trip to the broker (an
        interrupt_request, an input_reply), and one socket sent 631 a second without end."""
        try:
            request = load_json(raw)
        except ValueError:
            request = None
        request = request if isinstance(request, dict) else {}
        header = given if isinstance(given := request.get("header"), dict) else {}
        kind = SUBSCRIBE_REPLY if (header.get("msg_type") or request.get("msg_type")) \
            == SUBSCRIBE_REQUEST else mt.REQUEST_ACCEPTED
        self.reply(request, kind, {"ok": False, "http_status": 429, "retry_after": wait,
                                   "error": guard.too_many_requests(self, wait)})

    async def _subscribe(self, request: dict[str, Any], content: dict[str, Any]) -> None:
        user, worksheet = content.get("user"), content.get("worksheet")
        since, session = content.get("since", 0), content.get("session")
        if not (is_name(user) and is_name(worksheet)) or not is_integer(since) or not (
                0 <= since <= mt.MAX_SEQ):
            raise ValueError("subscribe_request needs user, worksheet and since, a "
                             "non-negative integer (the last seq the client has, 0 for all)")
        if self._refused(request, SUBSCRIBE_REPLY, user, worksheet):  # type: ignore[arg-type]
            return
        if (user, worksheet) not in self.subs and not follows.take(self):  # 429 past its bound
            return self.reply(request, SUBSCRIBE_REPLY, dict(follows.REFUSED))
        sub = Subscription(self, user, worksheet, since,
                           session if isinstance(session, str) else None)
        self.subs[(user, worksheet)] = sub
        self.link.listen((user, worksheet), self.on_output)
        sub.task = asyncio.ensure_future(self._replay_then_reply(request, sub))

    async def _replay_then_reply(self, request: dict[str, Any], sub: Subscription) -> None:
        """The replay runs beside this socket's next messages, so a request sent right after
        the subscription (what cellbus.js does on a new page) goes to the broker at once; its
        output waits in the subscription until the replay before it is delivered."""
        try:
            await sub.replay()
        except BrokerUnavailable as e:
            return self.reply(request, "error_reply", {"ok": False, "http_status": 503,
                                                       "error": str(e)})
        except Exception:
            log.exception("gateway: replay for %s/%s failed", sub.user, sub.worksheet)
            return self.reply(request, "error_reply", {"ok": False, "http_status": 500, "error":
                              "the gateway failed on this subscription; its log has the details"})
        self.reply(request, SUBSCRIBE_REPLY, {
            "ok": True, "session": sub.session, "seq": sub.last,
            **({"lost": sub.lost} if sub.lost else {}),
            "max_input": self.settings["max_input"],
            "max_message": self.settings["websocket_max_message_size"]})
        sub.replied = True

    async def _forward(self, request: dict[str, Any], msg_type: str,
                       content: dict[str, Any]) -> None:
        metadata = request.get("metadata")
        facts = metadata.get("cellbus") if isinstance(metadata, dict) else None
        facts = facts if isinstance(facts, dict) else {}
        address = tuple(facts.get(k) for k in ("user", "worksheet", "cell_id"))
        if not all(is_name(p) for p in address):
            raise ValueError("metadata.cellbus must name user, worksheet and cell_id")
        if self._refused(request, mt.REQUEST_ACCEPTED, *address,  # type: ignore[arg-type]
                         costly=msg_type in COSTLY):
            return
        if msg_type == mt.EXECUTE_REQUEST:
            code = content.get("code")
            if code is not None and not isinstance(code, str):
                raise ValueError("code must be a string")
            kernel = content.get("kernel")
            content = execute_content(within_limit(code, self.settings["max_input"]))
            if isinstance(kernel, str) and kernel:  # the broker checks the name
                content["kernel"] = kernel
        elif msg_type == mt.INTERACT_REQUEST:
            content = interact_content(content)
        elif msg_type == mt.INPUT_REPLY:
            content = input_content(content)
        elif msg_type == mt.RESTART_REQUEST:
            content = {}
        elif msg_type in (mt.COMPLETE_REQUEST, mt.INSPECT_REQUEST):
            content = (complete_content if msg_type == mt.COMPLETE_REQUEST
                       else inspect_content)(content)
            within_limit(content["code"], self.settings["max_input"])
        header = {**request["header"]} if isinstance(request.get("header"), dict) else None
        if header is not None and not all(
                isinstance(header.get(k), str) and len(header[k]) <= MAX_HEADER_FIELD for k in (
                    "msg_id", "msg_type", "session", "username", "date", "version")):
            header = None  # the gateway makes one: a client's must be complete and short
        if header is not None:
            # The gateway sends it, now. A client that sends one header twice must not make
            # two identical signed messages: the broker drops the second as a replay, and
            # the client waited 10 s for a 503; now it gets 409 for the reused msg_id.
            header["date"] = utcnow_iso()
        reply = await self.link.request(msg_type, content, address, header=header,  # type: ignore[arg-type]
                                        client=guard.quota_client(self, self.visitor))
        self.reply(request, reply["msg_type"], reply["content"])

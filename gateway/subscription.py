"""One worksheet's output stream on one browser's socket (:class:`Subscription`): what the
store has after the client's ``since``, then live, in seq order, each seq once.

A subscription replays from the store and then goes live without gaps or duplicates: live
messages wait while the replay runs, each ``seq`` is delivered once, and a gap seen on the
live feed (or a seq beacon ahead of it) is filled from the store (the ZeroMQ Guide's Clone
pattern, client side). A new session for the worksheet (a restart) starts again from its seq
1. A replay goes as fast as the client reads (:meth:`gateway.outbox.Outbox.room`). The
socket (:class:`gateway.ws.SocketHandler`, or a Jupyter client's channels) owns it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from protocol import msgtypes as mt
from protocol import outputwords
from protocol.fileurls import file_url
from protocol.wire import Message

from . import heap
from .bus import BrokerUnavailable

if TYPE_CHECKING:
    from .bigreads import PageTurn
    from .ws import SocketHandler

log = logging.getLogger("cellbus.gateway")
#: A replay asks the store for pages of about this many bytes (a page is held whole while
#: the client takes it), starting with :data:`FIRST_PAGE` messages; the broker gives at
#: most 1,000 a page.
PAGE_BYTES = 1024 * 1024
FIRST_PAGE = 64
MAX_PAGE = 1000
#: The message that tells a subscribed client what it had seen that the store lacks.
OUTPUT_LOST = "output_lost"


def to_json(msg: Message) -> str:
    """A bus message as the browser sees it: buffers travel by URL instead."""
    facts = msg["metadata"].get("cellbus") or {}
    data = msg["content"].get("data")
    if (isinstance(data, dict) and isinstance(ref := data.get(mt.FILE_MIME), dict)
            and "seq" in facts):
        address = [facts.get(k, "") for k in ("user", "worksheet", "cell_id")]
        facts["url"] = file_url(address, facts["seq"], ref.get("name"))
    return json.dumps({k: msg[k] for k in ("header", "msg_id", "msg_type", "parent_header",
                                           "metadata", "content")}, default=str)


def replayed_buffers(messages: list[Message], frames: list[bytes]) -> None:
    """Give each message of a replay (the broker's ``session_replay``) its buffers: the
    reply's frames, in order, as many as its ``metadata.cellbus.buffers`` says."""
    at = 0
    for msg in messages:
        count = msg["metadata"]["cellbus"].pop("buffers", 0)
        if isinstance(count, int) and count > 0:
            msg["buffers"], at = frames[at:at + count], at + count


class Subscription:
    """One worksheet's output stream for one socket, in seq order, each seq once."""

    def __init__(self, socket: SocketHandler, user: str, worksheet: str, since: int,
                 session: str | None) -> None:
        self.socket, self.user, self.worksheet = socket, user, worksheet
        self.session, self.last = session, since
        #: Live messages that came during a replay, as (message, its JSON), at most half
        #: the socket's bound in bytes; past it they are dropped and the replay goes on to
        #: fetch them from the store (:attr:`dropped`).
        self.held: list[tuple[Message, str]] = []
        self.held_bytes = 0
        self.dropped = False
        #: The replay from the store (first, or to fill a gap), while it runs or is about to.
        self.task: asyncio.Future[None] | None = None
        #: The broker process (``header["session"]``) whose store the last replay read.
        self.broker: str | None = None
        #: What the client had seen of its session that the store lacks (a restored backup:
        #: the broker's ``lost``), for its subscribe_reply; None if nothing.
        self.lost: dict[str, object] | None = None
        #: Whether the client has its subscribe_reply: a loss found after it (the socket was
        #: open across the restore) is told in a message of its own (:meth:`tell_lost`).
        self.replied = False

    @property
    def replaying(self) -> bool:
        """Live messages wait (in :attr:`held`) until the replay is delivered."""
        return self.task is not None and not self.task.done()

    def offer(self, msg: Message) -> None:
        facts = msg["metadata"]["cellbus"]
        if self.replaying:
            self.hold(msg)
        elif facts.get("session") == self.session and facts.get("seq", 0) > self.last + 1:
            log.info("gateway: subscription to %s/%s is behind (seq %d, feed at %d); "
                     "catching up from the store", self.user, self.worksheet, self.last,
                     facts.get("seq", 0))
            self.catch_up()  # a gap on the live feed: fill it from the store
            self.hold(msg)
        else:
            self.deliver(msg)

    def hold(self, msg: Message) -> None:
        text = to_json(msg)
        self.held.append((msg, text))
        self.held_bytes += len(text)
        if self.held_bytes * 2 > self.socket.outbox.limit:
            self.held, self.held_bytes, self.dropped = [], 0, True

    def deliver(self, msg: Message, text: str | None = None) -> int:
        """Send ``msg`` unless it was sent already; returns the bytes sent."""
        facts = msg["metadata"]["cellbus"]
        if facts.get("session") != self.session:
            self.session, self.last = facts.get("session"), 0
        seq = facts.get("seq", 0)
        if seq <= self.last:
            return 0
        self.last = seq
        return self.send(msg, text if text is not None else to_json(msg))

    def send(self, msg: Message, text: str) -> int:
        """Hand ``msg`` (as ``text``, its JSON) to the socket; the bytes sent. The page
        takes no buffers (a file's go by URL)."""
        self.socket.send(text)
        return len(text)

    def tell_lost(self) -> None:
        """Tell the client, before the new output that follows, what :attr:`lost` says."""
        self.socket.reply({}, OUTPUT_LOST, dict(self.lost or {}))

    def catch_up(self) -> None:
        """Replay from the store in the background (the task is kept, so it is not
        garbage-collected mid-replay); a failure is logged, not left unretrieved."""
        if not self.replaying:
            self.task = asyncio.ensure_future(self.replay())
            self.task.add_done_callback(self._caught_up)

    def _caught_up(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and (e := task.exception()) is not None:
            log.warning("gateway: catching up %s/%s from the store failed: %s; the next "
                        "seq beacon tries again", self.user, self.worksheet, e)

    async def replay(self) -> None:
        """Deliver what the store has after :attr:`last`, then what waited meanwhile; run
        only as :attr:`task`. A replay that fails drops what waited: delivered, it would
        move :attr:`last` past what the store still has for it, a gap nothing fills; the
        next catch-up fetches it all."""
        limit, carried, replayed = FIRST_PAGE, 0, False
        turn: PageTurn = self.socket.settings["page_turn"]
        reader = self.socket.visitor.key
        try:
            while True:
                # One page taken and encoded at a time, each paid for (gateway/bigreads.py).
                async with turn.take(reader):
                    reply = await self.socket.link.request(
                        mt.SESSION_REPLAY_REQUEST, {"since": self.last, "limit": limit},
                        (self.user, self.worksheet, "-"))
                    content = reply["content"]
                    if not content.get("ok"):
                        raise BrokerUnavailable(str(content.get("error")))
                    turn.paid(reader, content)
                    self.broker = reply["header"].get("session")
                    if content.get("lost") and content["session"] == self.session:
                        self.lost = outputwords.lost(self.session, content["lost"])
                        if self.replied:
                            self.tell_lost()
                    if content["session"] != self.session:
                        if self.session is not None and self.last:
                            # another session: from its start
                            self.session, self.last = content["session"], 0
                            continue
                        self.session = content["session"]
                    replayed_buffers(content["messages"], reply.get("buffers") or [])
                    page = [(msg, to_json(msg)) for msg in content["messages"]]
                sent = 0
                for msg, text in page:
                    if not await self.socket.outbox.room():
                        return  # the socket is closed
                    sent += self.deliver(msg, text)
                carried += sent
                if sent:
                    per_message = sent / len(content["messages"])
                    limit = max(1, min(MAX_PAGE, int(PAGE_BYTES / per_message)))
                if not content["more"] and not self.dropped:
                    replayed = True
                    break
                self.dropped = False
        finally:
            heap.trim_soon(carried)
            held = sorted(self.held, key=lambda m: m[0]["metadata"]["cellbus"]["seq"]) \
                if replayed else []
            self.held, self.held_bytes = [], 0
            for msg, text in held:
                self.deliver(msg, text)

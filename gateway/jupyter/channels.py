"""``WS /api/kernels/ID/channels?session_id=...``: a kernel's channels, replayed from the store.

The socket is :class:`gateway.ws.SocketHandler`'s (admission, origin, outbox, seq beacons)
subscribed to its kernel's worksheet from the client's delivery position: the store keeps,
per client ``session_id``, the seq last handed over to it (``delivery_request``, see
:mod:`.positions`), written as it advances (one write in flight per socket, the newest
next). A client that comes back with the same ``session_id`` gets everything after that
position, through any gateway; a new ``session_id`` starts at the running execution's
first output.

Stored output is already Jupyter's (status, execute_input, stream, display_data,
execute_result, error, execute_reply, and a Jupyter kernel's comm messages); cellbus's
routing facts are taken out of metadata. A client's comm messages go to a Jupyter kernel
through the broker (broker/comms.py), and so do its questions about code (completion,
inspection, is_complete, history) to any session; the built-in session has no comms.
``input_request`` goes only to the client whose execute asked for input. What a kernel
answers about itself (kernel_info; comm_info for the built-in session) the gateway
answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable
from typing import Any

from tornado.web import HTTPError

from protocol import msgtypes as mt
from protocol.address import is_name
from protocol.kernels import SHUT_DOWN
from protocol.queries import unanswered
from protocol.ratelog import RateLog
from protocol.requests import BEHIND
from protocol.wire import Message

from ..base import BaseHandler
from ..bus import BrokerUnavailable
from ..guard import held_back, quota_client, rate_wait, too_many, too_many_requests
from ..ws import SocketHandler
from . import model, wire
from .execute import Unanswered, forwarded
from .kernelspecs import DEFAULT, kernelspecs, spec_of
from .model import START_CELL, Sockets, owner
from .positions import HandingOutbox, Positions
from .prompts import Prompts
from .replay import Replay

log = logging.getLogger("cellbus.gateway")
#: What a client's messages make the gateway log, at a bounded rate per user and kind.
client_log = RateLog(log)
#: Longest ``session_id`` a client may name (longer: the socket gets a fresh one).
MAX_CLIENT = 128
#: What the gateway answers itself, for the built-in session: reply type and content.
LOCAL_REPLIES: dict[str, tuple[str, dict[str, Any]]] = {
    "comm_info_request": ("comm_info_reply", {"status": "ok", "comms": {}}),
}
INPUT_REPLY = mt.INPUT_REPLY
#: Position writes in flight, which a gateway that stops waits for (:func:`positions_written`).
WRITING: set[asyncio.Future[None]] = set()
#: Execute requests sent to the broker whose acceptance is awaited (a refusal is answered).
ACCEPTING: set[asyncio.Future[None]] = set()
#: Seconds between looks at how much of what was sent a client's side has taken, while
#: some of it is not (its delivery position follows).
POSITION_EVERY = 0.25


async def stop_sockets(sockets: Sockets, timeout: float) -> None:
    """As the gateway stops: close every channels socket (1001, going away; tornado's
    ``close_all_connections`` leaves WebSockets open, to die with the process), and wait up
    to ``timeout`` seconds for each to end and for its last position to be written. A client
    reads up to the close, so it resumes from exactly there, elsewhere or after a restart."""
    handlers = [handler for group in sockets.open.values() for handler in group]
    for handler in handlers:
        handler.close(1001, "the gateway is stopping; connect again with your session_id")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    ending = [asyncio.ensure_future(handler.ended.wait()) for handler in handlers]
    if ending:
        await asyncio.wait(ending, timeout=timeout)
        for waiter in ending:
            waiter.cancel()
    if WRITING:
        await asyncio.wait(set(WRITING), timeout=max(0.1, deadline - loop.time()))


class ChannelsHandler(SocketHandler):
    outbox: HandingOutbox

    async def ask(self, msg_type: str, content: dict[str, Any],
                  address: tuple[str, str, str]) -> Message:
        """:meth:`BaseHandler.ask`: a refusal or an absent broker is an HTTPError."""
        return await BaseHandler.ask(self, msg_type, content, address)  # type: ignore[arg-type]

    @property
    def sockets(self) -> Sockets:
        sockets: Sockets = self.settings["jupyter_sockets"]
        return sockets

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """The kernel must be the user's (else 404) before the handshake."""
        self.kernel_id: str = args[0]
        self.user = owner(self.visitor)
        await model.find(self.ask, self.user, self.kernel_id)
        await super().get(*args, **kwargs)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return wire.V1 if wire.V1 in subprotocols else None

    async def open(self, *args: Any) -> None:  # type: ignore[override]
        super().open(*args)
        client = self.get_query_argument("session_id", None)
        self.client = client if client and len(client) <= MAX_CLIENT else uuid.uuid4().hex
        self.binary = self.selected_subprotocol == wire.V1
        #: A JSON client gets buffers in binary frames only with --legacy-buffers: one
        #: relaying for jupyter_server's GatewayClient reads none (it stops relaying).
        self.legacy_buffers = bool(self.settings.get("legacy_buffers"))
        self.address = (self.user, self.kernel_id, "-")
        self.prompts = Prompts(self.client)
        self.unanswered = Unanswered()  # what a new execute_request queues behind
        self.outbox = HandingOutbox(self, self.settings["client_buffer"], self._release)
        self.positions = Positions()
        self.position: tuple[str, int] | None = None
        self.looking: asyncio.TimerHandle | None = None
        self.ended = asyncio.Event()  # set once the socket is done (stop_sockets)
        self.writing: asyncio.Future[None] | None = None
        #: The ``header.session`` of every message to the client: the kernel's cellbus
        #: session (a restart makes a new one, as a Jupyter kernel's restart does).
        self.kernel_session = self.kernel_id
        #: The kernelspec the kernel runs, once a comm message needed it.
        self.kernel_name: str | None = None
        self.sockets.add((self.user, self.kernel_id), self)
        try:
            reply = await self.link.request(mt.DELIVERY_REQUEST, {"client": self.client},
                                            self.address)
        except BrokerUnavailable as e:
            log.warning("gateway: no delivery position for a channels socket: %s", e)
            return self.close(1011, "the broker is not reachable; connect again")
        c = reply["content"]
        if not c.get("ok"):
            return self.close(1011, str(c.get("error")))
        if c.get("position"):
            session, since = c["position"]
        else:
            session, since = c.get("session"), c.get("start", 0)
        self.kernel_session = c.get("session") or self.kernel_id
        sub = Replay(self, self.user, self.kernel_id, since, session)
        self.subs[(self.user, self.kernel_id)] = sub
        self.link.listen((self.user, self.kernel_id), self.on_output)
        sub.catch_up()

    def _release(self) -> None:
        if self.looking is not None:
            self.looking.cancel()
        self._position()  # what was handed over before the end, the queue not
        super()._release()
        self.sockets.discard((self.user, self.kernel_id), self)
        self.ended.set()

    # -- to the client ----------------------------------------------------------------------

    def delivered(self, session: str, seq: int) -> None:
        """Keep the client's position in the store (one write at a time, the newest): the
        last message its side has taken (:mod:`.positions`), looked at again every
        :data:`POSITION_EVERY` seconds while some it was sent are not taken yet."""
        self.positions.sent(self.outbox.carried, (session, seq))
        self._store_position()

    def _look_again(self) -> None:
        self.looking = None
        if not self.outbox.closed:
            self._store_position()

    def _store_position(self) -> None:
        self._position()
        if self.positions.marks and self.looking is None and not self.outbox.closed:
            self.looking = asyncio.get_running_loop().call_later(POSITION_EVERY,
                                                                 self._look_again)

    def _position(self) -> None:
        self.position = self.positions.handed(self.outbox.handed())
        if self.position is not None and (self.writing is None or self.writing.done()):
            self.writing = asyncio.ensure_future(self._write_positions())
            WRITING.add(self.writing)
            self.writing.add_done_callback(WRITING.discard)

    async def _write_positions(self) -> None:
        written = None
        while self.position != written:
            written = self.position
            assert written is not None
            try:
                await self.link.request(mt.DELIVERY_REQUEST, {
                    "client": self.client, "session": written[0], "seq": written[1]},
                    self.address)
            except BrokerUnavailable as e:
                log.warning("gateway: could not store a channels client's position: %s", e)
                return

    def send(self, text: str, buffers: list[bytes] | None = None) -> None:
        """A stored message (cellbus's JSON, from :class:`Replay`, and its buffers: a
        kernel comm's bytes) as Jupyter's."""
        msg = json.loads(text)
        msg["buffers"] = buffers if self.binary or self.legacy_buffers else []
        msg_type = msg["msg_type"]
        facts = msg["metadata"].pop("cellbus", None) or {}
        if msg_type == mt.SESSION_CLOSED and msg["content"].get("reason") == SHUT_DOWN:
            return self.kernel_gone()  # shut down, through this gateway or another one
        if msg_type in wire.HIDDEN or (
                msg_type == "input_request" and not self.prompts.is_ours(msg["parent_header"])):
            return
        if msg["metadata"].pop(mt.STDIN_ECHO, None) is True:  # input()'s prompt and answer:
            return  # a Jupyter client shows them itself (its stdin line), not twice
        if msg_type == "input_request" and isinstance(facts.get("cell_id"), str):
            self.prompts.shown(msg["header"]["msg_id"], facts["cell_id"])  # its answer goes there
        if facts.get("cell_id") == START_CELL:  # the kernel's start: no client asked
            if msg_type != mt.STATUS:
                return
            if msg["content"].get("execution_state") == "busy":
                msg["content"]["execution_state"] = "starting"
        if msg_type == mt.EXECUTE_REPLY:
            self.unanswered.answered(msg["parent_header"].get("msg_id"))
        if isinstance(facts.get("reply_to"), dict):  # about a client's comm message
            msg["parent_header"] = facts["reply_to"]
        if isinstance(facts.get("session"), str):  # one sender per kernel session, as
            self.kernel_session = facts["session"]  # @jupyterlab/services requires
        msg["header"]["session"] = self.kernel_session
        data = msg["content"].get("data")
        if isinstance(data, dict):
            data.pop(mt.FILE_MIME, None)
        self.outbox.send(wire.encode(msg, wire.channel_of(msg_type),  # type: ignore[arg-type]
                                     binary=self.binary))

    def answer(self, request: dict[str, Any], msg_type: str, content: dict[str, Any],
               channel: str) -> None:
        msg = self.link.session.msg(msg_type, content, parent=request)
        msg["header"]["session"] = self.kernel_session
        self.outbox.send(wire.encode(msg, channel, binary=self.binary))  # type: ignore[arg-type]

    def kernel_reply(self, request: dict[str, Any], msg_type: str, content: dict[str, Any],
                     channel: str) -> None:
        """A reply the gateway makes for the kernel, between the ``busy`` and ``idle`` a
        kernel sends around every request it handles: a Jupyter client's request is done
        only once it has both its reply and that idle (@jupyterlab/services' future)."""
        self.status("busy", request)
        self.answer(request, msg_type, content, channel)
        self.status("idle", request)

    def status(self, state: str, request: dict[str, Any] | None = None) -> None:
        """An iopub ``status`` that is no stored output (dead, or on kernel_info)."""
        if not self.outbox.closed:
            self.answer(request or {}, mt.STATUS, {"execution_state": state}, "iopub")

    def kernel_gone(self) -> None:
        """Shut down: ``dead`` and closed (again when the broker's note comes: a no-op)."""
        self.status("dead")
        self.close(1000, "the kernel was shut down")

    # -- from the client --------------------------------------------------------------------

    async def on_message(self, raw: str | bytes) -> None:
        if self.outbox.closed or not await self.token_watch.valid():
            return  # closed, or being closed (its token was removed)
        try:
            channel, request = wire.decode(raw, v1=self.binary)
        except wire.WireError as e:
            client_log.info((self.user, "no message"),
                            "gateway: a channels client of %s sent what is no message: %s",
                            self.user, e)
            return
        msg_type = request["header"].get("msg_type")
        if (wait := await held_back(self, self.visitor)) is not None:  # as on /ws
            return self._failed(request, msg_type, too_many_requests(self, wait))
        try:
            await self._dispatch(request, msg_type, request["content"])
        except HTTPError as e:
            self._failed(request, msg_type, e.reason or str(e))
        except BrokerUnavailable as e:
            self._failed(request, msg_type, str(e))

    async def _dispatch(self, request: dict[str, Any], msg_type: Any,
                        content: dict[str, Any]) -> None:
        if msg_type == mt.KERNEL_INFO_REQUEST:
            # A kernel's answer: busy, the reply, idle, all with this parent (a Jupyter
            # client's request is done once it has its reply and that idle); then the
            # kernel's real state with no parent, since JupyterLab ignores status messages
            # whose parent is a kernel_info_request for the kernel's state.
            entry = await model.find(self.ask, self.user, self.kernel_id)
            spec = spec_of(entry.get("kernel") or "", await kernelspecs(self.ask))
            self.kernel_reply(request, mt.KERNEL_INFO_REPLY, spec.kernel_info(), "shell")
            self.status(model.execution_state(entry))
        elif msg_type == mt.EXECUTE_REQUEST:
            await self._run_code(request, content)
        elif msg_type == mt.INTERRUPT_REQUEST:
            await model.interrupt(self.ask, self.user, self.kernel_id)
            self.answer(request, mt.INTERRUPT_REPLY, {"status": "ok"}, "control")
        elif msg_type == mt.SHUTDOWN_REQUEST:
            restart = content.get("restart") is True
            if (wait := rate_wait(self, self.visitor)) is not None:  # as its REST twins
                return self._failed(request, msg_type, too_many(self, wait))
            self.answer(request, mt.SHUTDOWN_REPLY, {"status": "ok", "restart": restart},
                        "control")
            if restart:
                await model.restart(self.ask, self.user, self.kernel_id)
            else:
                await model.shut_down(self.ask, self.user, self.kernel_id, self.sockets)
        elif msg_type == INPUT_REPLY:
            value = content.get("value")
            answer: dict[str, Any] = {"value": value if isinstance(value, str) else ""}
            asked = self.prompts.answered(request.get("parent_header"))
            if asked is None:
                return  # no prompt of this kernel delivered here: nothing to answer
            answer["prompt"] = asked[0]
            reply = await self.link.request(INPUT_REPLY, answer, (self.user, self.kernel_id,
                                                                  asked[1]))
            if reply["content"].get("ok"):
                self.prompts.done(asked[0])
            else:
                client_log.info((self.user, "input_reply"),
                                "gateway: an input_reply for kernel %s was refused: %s",
                                self.kernel_id, reply["content"].get("error"))
        elif msg_type in mt.KERNEL_REQUEST_TYPES:
            await self._to_kernel(request, msg_type, content)
        elif isinstance(msg_type, str) and msg_type in LOCAL_REPLIES:
            self.kernel_reply(request, *LOCAL_REPLIES[msg_type], "shell")

    async def _to_kernel(self, request: dict[str, Any], msg_type: str,
                         content: dict[str, Any]) -> None:
        """A client's comm message or query: the session gets it through the broker (its
        answers come back as the session's output). The built-in session has no comm
        targets, so the gateway answers its comm messages (a ``comm_open`` is closed at
        once), as it does for a refused one, and a query it could not send (no session
        yet, over ``--rate``) gets the reply of a kernel that knows nothing."""
        if self.kernel_name is None:
            entry = await model.find(self.ask, self.user, self.kernel_id)
            self.kernel_name = entry.get("kernel") or DEFAULT
        header = wire.client_header(request, self.client)
        query = msg_type in mt.QUERY_REQUEST_TYPES
        if (self.kernel_name != DEFAULT or query) and header is not None and not (
                query and rate_wait(self, self.visitor) is not None):
            reply = await self.link.request(msg_type, content, self.address, header=header,
                                            buffers=request["buffers"])
            if reply["content"].get("ok"):
                return
            client_log.info((self.user, msg_type),
                            "gateway: a %s for kernel %s was refused: %s", msg_type,
                            self.kernel_id, reply["content"].get("error"))
        if msg_type == mt.COMM_OPEN:
            self.kernel_reply(request, mt.COMM_CLOSE, {"comm_id": content.get("comm_id"),
                                                       "data": {}}, "iopub")
        elif query:
            self.kernel_reply(request, mt.QUERY_REPLIES[msg_type],
                              unanswered(msg_type, content), "shell")
        elif msg_type in LOCAL_REPLIES:
            self.kernel_reply(request, *LOCAL_REPLIES[msg_type], "shell")

    async def _run_code(self, request: dict[str, Any], content: dict[str, Any]) -> None:
        if not isinstance(content.get("code"), str):
            return self._failed(request, mt.EXECUTE_REQUEST, "code must be a string")
        if (wait := rate_wait(self, self.visitor)) is not None:
            return self._failed(request, mt.EXECUTE_REQUEST, too_many(self, wait))
        try:
            forward = forwarded(content, self.settings["max_input"])
        except ValueError as e:
            return self._failed(request, mt.EXECUTE_REQUEST, str(e))
        header = wire.client_header(request, self.client)
        if header is None:
            return self._failed(request, mt.EXECUTE_REQUEST, "the header is incomplete")
        self.prompts.sent(header["session"])  # its input_request comes to this socket
        cell_id = f"cell-{header['msg_id']}"
        if not is_name(cell_id):
            cell_id = f"cell-{uuid.uuid4().hex}"
        behind = self.unanswered.sent(header["msg_id"])
        waiting = await self.link.submit(mt.EXECUTE_REQUEST, forward,
                                         (self.user, self.kernel_id, cell_id), header=header,
                                         facts={BEHIND: behind} if behind else None,
                                         client=quota_client(self, self.visitor))
        # The next message is read meanwhile (see execute.Unanswered).
        accepting = asyncio.ensure_future(self._accepted(request, header["msg_id"], waiting))
        ACCEPTING.add(accepting)
        accepting.add_done_callback(ACCEPTING.discard)

    async def _accepted(self, request: dict[str, Any], msg_id: str,
                        waiting: Awaitable[Message]) -> None:
        try:
            reply = await waiting
        except BrokerUnavailable as e:
            reply = {"content": {"ok": False, "error": str(e)}}
        if not reply["content"].get("ok"):
            self.unanswered.answered(msg_id)
            if not self.outbox.closed:
                self._failed(request, mt.EXECUTE_REQUEST, str(reply["content"].get("error")))

    def _failed(self, request: dict[str, Any], msg_type: Any, error: str) -> None:
        """A request cellbus refused: its reply says so, as a kernel's error would."""
        kind = msg_type if isinstance(msg_type, str) and msg_type.endswith("_request") \
            else "error_request"
        reply_type = kind.replace("_request", "_reply")
        channel = wire.channel_of(reply_type)
        self.kernel_reply(request, reply_type, {"status": "error", "ename": "CellbusRefused",
                                                "evalue": error, "traceback": [error]}, channel)

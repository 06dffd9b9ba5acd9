"""The gateway's link to the broker: requests with one reply each, and the output feed.

``request()`` sends on a DEALER and waits for the reply whose parent is that request. The
DEALER is ``immediate``: with no broker connected, a request fails at once with
:class:`BrokerUnavailable` (a 503) instead of queueing behind a dead link. Output arrives on a
SUB socket (the broker's PUB) and is handed to every registered listener.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import zmq

from protocol import msgtypes as mt
from protocol.heartbeat import GATEWAY_INTERVAL
from protocol.curve import needs_keys
from protocol.node import Node
from protocol.sockets import BusSocket
from protocol.version import VERSION
from protocol.wire import Message

#: Seconds to wait for the broker's reply before answering 503.
REPLY_TIMEOUT = 10.0
#: Seconds a request waits for the link to the broker to be up (just after start, or while
#: the broker restarts) before answering 503.
CONNECT_GRACE = 1.0
#: Seconds the broker has to answer a check of a connection (:meth:`BrokerLink._check`)
#: before it is made anew.
CHECK_WAIT = 1.0

Listener = Callable[[Message], None]


class BrokerUnavailable(Exception):
    """The broker cannot be reached or did not answer in time."""


class AnswerLost(BrokerUnavailable):
    """The broker's answer was changed on the way, or the link to it was lost: every answer
    the connection was to carry is lost."""


#: Requests asked again under their msg_id when their answer is lost (:meth:`request`): the
#: broker stores each msg_id once, and says so (409) of one it stored already.
ASKED_AGAIN = frozenset({mt.EXECUTE_REQUEST})
#: What the broker says of a request whose msg_id it stored already (broker/intake.py).
DUPLICATE = "a request with this msg_id was already accepted"


class BrokerLink:
    def __init__(self, node: Node, *, connect: str, subscribe: str) -> None:
        self.node = node
        self.session = node.session
        #: The broker's gateway endpoint this link connects to (``--broker``).
        self.connect = connect
        #: How this gateway's users prove who they are ("token" or "none"), told to the
        #: broker with each request: per-user quotas count only users a token names.
        self.auth = "none"
        self.stopped = False  # said to the broker: no heartbeat follows (see :meth:`stop`)
        self.dealer = node.socket(zmq.DEALER, label="DEALER to the broker")
        self.dealer.immediate = True
        node.secure(self.dealer, connect, option="--broker")
        for link in node.links:  # its watch's reconnect: this DEALER connects by itself
            if link.endpoint == connect and not link.server:
                link.reconnect = functools.partial(self._changed, self.dealer)
        self.dealer.connect(connect)
        node.log.info("gateway connected DEALER to the broker at %s", connect)
        #: The broker's output feed (--subscribe), whose link /ready looks at.
        self.subscribe = subscribe
        #: Big answers (broker/updates.py) come on a connection of their own: the replies of
        #: one connection come in order, and another user's small answer queued behind a
        #: 7 MB one for 0.2 s (bench/read_hammer.py). Its link is the DEALER's, not logged
        #: twice; but a big answer it could not decrypt (changed on the way) is said, and
        #: its connection made anew at once (:meth:`_bulk_changed`).
        self.bulk = node.socket(zmq.DEALER, label="DEALER for big answers")
        self.bulk.immediate = True
        node.secure(self.bulk, connect, option="--broker", watch=False)
        #: msg_ids of the requests whose answers come on :attr:`bulk`.
        self.bulk_pending: set[str] = set()
        if needs_keys(connect):
            node.watch_link(self.bulk, connect, server=False, curve=True,
                            reconnect=functools.partial(self._changed, self.bulk))
        self.bulk.connect(connect)
        self.sub = node.socket(zmq.SUB, label="SUB for output")
        self.sub.rcvhwm = mt.FEED_HWM
        node.secure(self.sub, subscribe, option="--subscribe")
        self.sub.connect(subscribe)
        node.log.info("gateway connected SUB for output to %s", subscribe)
        self.sub.subscribe(b"")
        self.pending: dict[str, asyncio.Future[Message]] = {}
        #: The connections being checked now (:meth:`_check`).
        self.checking: set[BusSocket] = set()
        #: Called with every output message.
        self.listeners: set[Listener] = set()
        #: Called with each request's type and address as it is sent and as its reply
        #: comes (gateway/finished.py: one that changes a worksheet forgets its answers).
        self.asking: list[Callable[[str, tuple[str, str, str]], None]] = []
        #: (user, worksheet) -> called with that worksheet's output only; None -> with seq
        #: beacons only. A message reaches its own listeners, not every socket's.
        self.keyed: dict[tuple[str, str] | None, set[Listener]] = {}
        node.spawn(self._replies(self.dealer), "replies")
        node.spawn(self._replies(self.bulk), "big replies")
        node.spawn(self._outputs(), "outputs")

    async def request(self, msg_type: str, content: dict[str, Any], address: tuple[str, str, str],
                      *, header: dict[str, Any] | None = None,
                      facts: dict[str, Any] | None = None, client: str | None = None,
                      timeout: float = REPLY_TIMEOUT,
                      buffers: list[bytes] | None = None, bulk: bool = False) -> Message:
        """Send a request about the cell at ``address`` (``buffers``: a Jupyter client's
        comm message's bytes; ``bulk``: its answer is big, and comes on :attr:`bulk`);
        return the broker's reply. An execute of this gateway's own (no ``header``) whose
        answer was lost (:class:`AnswerLost`) is asked again once under its msg_id, and the
        broker's word that it stored it already is its acceptance: a 503 for a request that
        was stored and runs would have the client run it twice."""
        try:
            return await self._asked(msg_type, content, address, header=header, facts=facts,
                                     client=client, timeout=timeout, buffers=buffers,
                                     bulk=bulk)
        finally:
            for hook in self.asking:  # what it changed is in the store by now
                hook(msg_type, address)

    async def _asked(self, msg_type: str, content: dict[str, Any],
                     address: tuple[str, str, str], *, header: dict[str, Any] | None,
                     facts: dict[str, Any] | None, client: str | None, timeout: float,
                     buffers: list[bytes] | None, bulk: bool) -> Message:
        ask = functools.partial(self.submit, msg_type, content, address, facts=facts,
                                client=client, timeout=timeout, buffers=buffers, bulk=bulk)
        again = msg_type in ASKED_AGAIN and header is None and not bulk
        if again:
            header = self.session.msg_header(msg_type)
        try:
            return await (await ask(header=header))
        except AnswerLost:
            if not again or header is None:
                raise
        self.node.log.info("gateway: the answer to %s %s was lost on the way; asking again "
                           "under its msg_id", msg_type, header["msg_id"])
        # Once the new connection is up: until then the old one's end may still take a
        # message, and lose it.
        deadline = asyncio.get_running_loop().time() + CONNECT_GRACE
        while self.node.link_up_for(self.connect) is None and \
                asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        # A new date: the same signature would be refused as a replay.
        header = {**header, "date": self.session.msg_header(msg_type)["date"]}
        reply = await (await ask(header=header))
        if reply["content"].get("error") == DUPLICATE:  # stored the first time
            reply["content"] = {"ok": True, "cell_id": address[2], "status": "needs_work",
                                "msg_id": header["msg_id"]}
        return reply

    async def submit(self, msg_type: str, content: dict[str, Any], address: tuple[str, str, str],
                     *, header: dict[str, Any] | None = None,
                     facts: dict[str, Any] | None = None, client: str | None = None,
                     timeout: float = REPLY_TIMEOUT, buffers: list[bytes] | None = None,
                     bulk: bool = False) -> Awaitable[Message]:
        """Send a request (``facts``: routing facts of the gateway's, next to the cell's) and
        return what waits for its reply: a caller that sends several in a row does not wait
        for each reply before the next goes (they reach the broker in order). Waits only
        while no broker is connected (:data:`CONNECT_GRACE`). ``client``: the address key of
        an anonymous visitor of a public gateway, whose sessions the broker counts against
        --user-sessions (see gateway.guard.quota_client)."""
        for hook in self.asking:  # before it is sent (gateway/finished.py)
            hook(msg_type, address)
        user, worksheet, cell_id = address
        cellbus = {**(facts or {}), "user": user, "worksheet": worksheet, "cell_id": cell_id,
                   "auth": self.auth}
        if client:
            cellbus["client"] = client
        msg = self.session.msg(msg_type, content, header=header, metadata={"cellbus": cellbus})
        if buffers:
            msg["buffers"] = buffers
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        msg_id = msg["msg_id"]
        self.pending[msg_id] = future
        if bulk:
            self.bulk_pending.add(msg_id)
        try:
            frames = self.session.serialize(msg)
            sock = self.bulk if bulk else self.dealer
            if not sock.send_now(frames):  # no broker connected yet: a grace period
                try:
                    await asyncio.wait_for(sock.send_frames(frames), CONNECT_GRACE)
                except TimeoutError:
                    raise BrokerUnavailable("the broker is not reachable") from None
        except BaseException:
            self.pending.pop(msg_id, None)
            self.bulk_pending.discard(msg_id)
            raise
        return self._reply(msg_id, future, timeout)

    async def heartbeats(self, name: str) -> None:
        """Say every :data:`~protocol.heartbeat.GATEWAY_INTERVAL` seconds that this gateway
        (``name``: host:port) is up, and whether its output feed's link is (``feed``), so
        ``cellbus status`` lists it (broker/gateways.py); while no broker is connected, try
        again soon, and never wait to send. A feed that comes up or goes is said at once.
        Ends once :meth:`stop` has said the gateway stopped."""
        while not self.stopped:
            feed = self.feed_up()
            msg = self.session.msg(mt.GATEWAY_HEARTBEAT, {"gateway": name, "version": VERSION,
                                                          "feed": feed})
            sent = self.dealer.send_now(self.session.serialize(msg))
            for _ in range(round(GATEWAY_INTERVAL / 0.1) if sent else 1):
                await asyncio.sleep(0.1)
                if self.feed_up() != feed:
                    break

    def stop(self, name: str) -> None:
        """Say last that this gateway stops (gracefully), so the broker lists it stopped at
        once and logs that, rather than warn 6 s on that it fell silent."""
        self.stopped = True
        msg = self.session.msg(mt.GATEWAY_HEARTBEAT, {"gateway": name, "version": VERSION,
                                                      "feed": False, "stopped": True})
        self.dealer.send_now(self.session.serialize(msg))

    def feed_up(self) -> bool:
        """Whether the link to the broker's output feed (--subscribe) is up."""
        return self.node.link_problem(self.subscribe, "") is None

    async def _reply(self, msg_id: str, future: asyncio.Future[Message],
                     timeout: float) -> Message:
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise BrokerUnavailable(
                f"the broker did not answer within {timeout:.0f} s") from None
        finally:
            self.pending.pop(msg_id, None)
            self.bulk_pending.discard(msg_id)

    def _changed(self, sock: BusSocket) -> None:
        """An answer came changed on the way (``sock``'s connection could not decrypt it):
        ZeroMQ would keep that connection, reading nothing, until its heartbeat ended it,
        and every answer on its way would wait out :data:`REPLY_TIMEOUT`. The connection is
        made anew, and the requests whose answers it was to carry get :class:`AnswerLost`
        now: a read is asked again by its client, an execute by :meth:`request`."""
        sock.disconnect(self.connect)
        sock.connect(self.connect)
        self._lose(sock, "the broker's answer was changed on the way (a faulty or hostile "
                   "device on the network between this gateway and the broker); ask again")

    def lost(self, sock: BusSocket) -> None:
        """``sock``'s link to the broker was lost (a reset, a NAT that moved this host to
        another source port, a heartbeat that timed out): the answers its connection was to
        carry never come, so the requests waiting for them get :class:`AnswerLost` now (an
        execute is asked again under its msg_id once the link is up again, as after
        :meth:`_changed`), where each waited out :data:`REPLY_TIMEOUT` for a 503, and a
        client that then evaluated again ran its cell twice if the broker had stored it."""
        if sock is self.dealer or sock is self.bulk:
            self._lose(sock, "the link to the broker was lost while this was asked; ask again")

    def _lose(self, sock: BusSocket, why: str) -> None:
        """:class:`AnswerLost` for every request whose answer ``sock`` was to carry."""
        bulk = sock is self.bulk
        for msg_id, future in list(self.pending.items()):
            if (msg_id in self.bulk_pending) == bulk and not future.done():
                future.set_exception(AnswerLost(why))

    async def _check(self, sock: BusSocket) -> None:
        """The broker could not decrypt a message on its gateway port, maybe one of ``sock``'s
        (it says so on its feed: broker/gatewaylinks.py): its end of such a connection reads
        nothing more until ZeroMQ's heartbeat ends it (6 s), and every request on it waited
        out :data:`REPLY_TIMEOUT` for a 503. Ask on it; if the broker does not answer within
        :data:`CHECK_WAIT`, the connection is made anew and its requests get
        :class:`AnswerLost` now (an execute is asked again under its msg_id, and runs once)."""
        try:
            probe = self.session.msg(mt.GATEWAY_PROBE, {})
            future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
            self.pending[probe["msg_id"]] = future
            if sock is self.bulk:
                self.bulk_pending.add(probe["msg_id"])
            try:
                sent = sock.send_now(self.session.serialize(probe))
            except zmq.ZMQError:  # (a check must never stop the gateway)
                sent = False
            if not sent:
                self.pending.pop(probe["msg_id"], None)
                self.bulk_pending.discard(probe["msg_id"])
                return  # not connected now: nothing to check
            try:
                await self._reply(probe["msg_id"], future, CHECK_WAIT)
            except AnswerLost:
                return  # made anew already
            except BrokerUnavailable:
                self.node.log.warning(
                    "gateway: the broker could not decrypt a message on its gateway port and "
                    "does not answer on this gateway's %s: what it sends there is lost on the "
                    "way (a byte changed by a faulty or hostile device on the network); "
                    "connecting again", "connection for big answers" if sock is self.bulk
                    else "connection")
                for link in self.node.links:  # asked again once the new one is up
                    if sock is self.dealer and link.endpoint == self.connect and not link.server:
                        link.remade()
                self._changed(sock)
        finally:
            self.checking.discard(sock)

    async def _replies(self, sock: BusSocket) -> None:
        while True:
            got = await self.node.recv(sock)
            if got is None:
                continue
            future = self.pending.get(got[1]["parent_header"].get("msg_id", ""))
            if future is not None and not future.done():
                future.set_result(got[1])

    def listen(self, worksheet: tuple[str, str] | None, listener: Listener) -> None:
        """Call ``listener`` with each output of ``worksheet`` ((user, worksheet)), or with
        each seq beacon if it is None."""
        self.keyed.setdefault(worksheet, set()).add(listener)

    def unlisten(self, worksheet: tuple[str, str] | None, listener: Listener) -> None:
        group = self.keyed.get(worksheet)
        if group is not None:
            group.discard(listener)
            if not group:
                del self.keyed[worksheet]

    async def _outputs(self) -> None:
        while True:
            got = await self.node.recv(self.sub)
            if got is None:
                continue
            msg = got[1]
            if msg["msg_type"] == mt.GATEWAY_CHECK:
                for sock in {self.dealer, self.bulk} - self.checking:
                    self.checking.add(sock)
                    self.node.spawn(self._check(sock), "link check")
                continue
            for listener in list(self.listeners):
                listener(msg)
            facts = msg["metadata"].get("cellbus")
            if msg["msg_type"] == mt.SEQ_BEACON:
                group = self.keyed.get(None)
            elif isinstance(facts, dict) and isinstance(facts.get("user"), str) and isinstance(
                    facts.get("worksheet"), str):
                group = self.keyed.get((facts["user"], facts["worksheet"]))
            else:
                continue
            for listener in list(group or ()):
                listener(msg)

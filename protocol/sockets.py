"""ZeroMQ sockets driven by the node's own event loop.

A :class:`BusSocket` is a plain ``zmq.Socket`` (options, bind and connect work as usual)
with awaitable whole-message I/O: :meth:`~BusSocket.recv_frames`, :meth:`~BusSocket.send_frames`
and the non-waiting :meth:`~BusSocket.recv_now` and :meth:`~BusSocket.send_now`. It replaces
``zmq.asyncio``, whose general machinery (a future per call, ``zmq.Events`` enum arithmetic
on every wake-up, a scheduled callback per operation) made a relay of messages between
processes about 0.15-0.4 ms slower per node on this 2-core machine, and the whole chain used
5 % more CPU per execution (bench/RESULTS.md, "Third pass"). Only whole multipart messages
move: a message is sent or taken in one call, so messages from several tasks never
interleave.

How it waits: a ZeroMQ socket's descriptor (``FD``) is edge-triggered. It becomes readable
when the socket's events *may* have changed, and every send, recv or read of ``EVENTS`` can
consume that edge. So the loop watches the descriptor, and after every operation made while
someone waits, :meth:`BusSocket._serve` reads ``EVENTS`` and serves waiters until nothing
more can move; reading ``EVENTS`` re-arms the descriptor for the next change. Waiters are
served first come, first served (recv and send each in their own queue), and a waiter whose
task was cancelled is skipped without taking or sending anything.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Sequence
from typing import Any, cast

import zmq

from .recent import forget_oldest

# The Cython methods with int flags: pyzmq's Python layer adds a call and IntFlag arithmetic
# per frame.
_zsend, _zrecv = zmq.backend.Socket.send, zmq.backend.Socket.recv
_zget = cast(Callable[[Any, int], int], zmq.backend.Socket.get)  # EVENTS is an int
_SNDMORE, _DONTWAIT = int(zmq.SNDMORE), int(zmq.DONTWAIT)
_EVENTS, _POLLIN, _POLLOUT = int(zmq.EVENTS), int(zmq.POLLIN), int(zmq.POLLOUT)

Frames = list[bytes]
#: Peers whose CURVE keys a socket remembers (``peer_keys``) at most.
MAX_PEER_KEYS = 65536


class BusSocket(zmq.Socket):  # type: ignore[type-arg]
    """A ZeroMQ socket with awaitable whole-message send and receive on the running loop.

    Make one with ``BusSocket(context, kind)`` (or ``context.socket(kind, BusSocket)``). Use
    it from one event loop; the blocking ``send``/``recv`` methods of ``zmq.Socket`` bypass
    its waiters and must not be mixed with it.
    """

    # Class-level defaults: pyzmq maps unknown attribute names to socket options.
    _loop: asyncio.AbstractEventLoop | None = None
    _fd: int = -1
    _readers: collections.deque[asyncio.Future[Frames]] | None = None
    _writers: collections.deque[tuple[Sequence[bytes], asyncio.Future[None]]] | None = None
    #: A CURVE server's ROUTER calls :meth:`note_peer_keys` to fill this: each peer's CURVE
    #: public key (the ZAP handler's User-Id, z85) by routing id, as its messages arrive.
    peer_keys: collections.OrderedDict[bytes, str] | None = None

    def note_peer_keys(self) -> collections.OrderedDict[bytes, str]:
        """Start noting each peer's CURVE key in :attr:`peer_keys` (the newest
        :data:`MAX_PEER_KEYS`); returns that map."""
        self.peer_keys = collections.OrderedDict()
        return self.peer_keys

    # -- without waiting --------------------------------------------------------------------

    def recv_now(self) -> Frames | None:
        """The next whole message if one is waiting and no earlier caller waits for one;
        else None. Never blocks."""
        if self._readers:
            return None  # earlier callers come first
        frames = self._take()
        if frames is not None and self._writers:
            self._serve()  # the recv may have consumed the edge a waiting sender needs
        return frames

    def send_now(self, frames: Sequence[bytes]) -> bool:
        """Hand a whole message to libzmq if it can take it now and no earlier caller waits
        to send: True if sent, False if not (the high-water mark, or no peer yet on a socket
        with ``immediate``). Other errors (an unroutable ROUTER identity) raise ``ZMQError``."""
        if self._writers or not self._put(frames):
            return False
        if self._readers:
            self._serve()  # the send may have consumed the edge a waiting receiver needs
        return True

    def input_waiting(self) -> bool:
        """Whether a message waits to be received (one a waiting receiver is given now)."""
        waiting = bool(_zget(self, _EVENTS) & _POLLIN)
        if self._readers or self._writers:
            self._serve()  # reading EVENTS may have consumed the edge they wait for
        return waiting

    # -- awaited ----------------------------------------------------------------------------

    async def recv_frames(self) -> Frames:
        """The next whole message, waiting for one if need be."""
        frames = self.recv_now()
        if frames is not None:
            return frames
        future: asyncio.Future[Frames] = self._watch().create_future()
        assert self._readers is not None
        self._readers.append(future)
        # No _serve() here: recv_now read EVENTS (re-arming the descriptor) and found nothing,
        # or earlier receivers wait and are served first.
        return await future

    async def send_frames(self, frames: Sequence[bytes]) -> None:
        """Send a whole message, waiting while the socket cannot take it (the high-water
        mark); messages leave in the order this was called. If the caller is cancelled
        while waiting, the message is not sent."""
        if self.send_now(frames):
            return
        future: asyncio.Future[None] = self._watch().create_future()
        assert self._writers is not None
        self._writers.append((frames, future))
        self._serve()
        await future

    def close(self, linger: int | None = None) -> None:
        """Stop watching the descriptor, fail anyone still waiting, close the socket."""
        if self._loop is not None and not self.closed:
            self._loop.remove_reader(self._fd)
            gone = zmq.ZMQError(zmq.ENOTSOCK)
            for future in [*(self._readers or ()), *(f for _, f in self._writers or ())]:
                if not future.done():
                    future.set_exception(gone)
            self._loop = None
        super().close(linger)

    # -- machinery --------------------------------------------------------------------------

    def _watch(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._readers, self._writers = collections.deque(), collections.deque()
            self._fd = self.FD
            self._loop.add_reader(self._fd, self._serve)
        return self._loop

    def _take(self) -> Frames | None:
        if not _zget(self, _EVENTS) & _POLLIN:  # cheaper than raising zmq.Again
            return None
        return self._recv_message()

    def _recv_message(self) -> Frames | None:
        try:
            frame = _zrecv(self, _DONTWAIT, False)  # a Frame knows if more parts follow
        except zmq.Again:
            return None
        parts = [frame.bytes]
        if self.peer_keys is not None:
            self._note_peer(parts[0], frame)
        while frame.more:  # the rest of a message is always there once its first part is
            frame = _zrecv(self, 0, False)
            parts.append(frame.bytes)
        return parts

    def _note_peer(self, routing_id: bytes, frame: zmq.Frame) -> None:
        assert self.peer_keys is not None
        try:
            user_id = str(frame.get("User-Id"))
        except zmq.ZMQError:  # no ZAP handler gave the connection one
            return
        if self.peer_keys.get(routing_id) != user_id:
            self.peer_keys.pop(routing_id, None)
            self.peer_keys[routing_id] = user_id
            forget_oldest(self.peer_keys, MAX_PEER_KEYS)  # the entry noted longest ago goes

    def _put(self, frames: Sequence[bytes]) -> bool:
        last = len(frames) - 1
        try:
            _zsend(self, frames[0], _DONTWAIT | (_SNDMORE if last else 0))
        except zmq.Again:
            return False
        for i in range(1, last):  # libzmq checks the high-water mark once per message
            _zsend(self, frames[i], _SNDMORE)
        if last:
            _zsend(self, frames[last], 0)
        return True

    def _serve(self, *_: Any) -> None:
        """Move messages for waiters until none can move; reading EVENTS re-arms the
        descriptor. Called by the loop when the descriptor fires, and after operations."""
        readers, writers = self._readers, self._writers
        if self.closed or readers is None or writers is None:
            return
        while True:
            # Always read EVENTS, even with no one waiting: it consumes the descriptor's
            # signal, or the loop would call this again at once.
            events = _zget(self, _EVENTS)
            while readers and readers[0].done():  # its caller was cancelled
                readers.popleft()
            while writers and writers[0][1].done():
                writers.popleft()
            moved = False
            if readers and events & _POLLIN:
                frames = self._recv_message()
                if frames is not None:
                    readers.popleft().set_result(frames)
                    moved = True
            if writers and events & _POLLOUT:
                frames_out, future = writers[0]
                try:
                    sent = self._put(frames_out)
                except zmq.ZMQError as e:
                    sent = True
                    future.set_exception(e)
                else:
                    if sent:
                        future.set_result(None)
                if sent:
                    writers.popleft()
                    moved = True
            if not moved:
                return

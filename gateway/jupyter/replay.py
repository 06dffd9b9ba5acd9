"""A kernel's output for one channels socket: its subscription (:mod:`gateway.subscription`),
of the kernel's current session only, each delivery the client's new position.

A Jupyter client takes every message's ``header.session`` as the kernel's session as it
receives it: @jupyterlab/services cancels the handling of any message whose session is no
longer that one, and sets the kernel's status from every status it handles. A Jupyter
server never sends a message of a kernel that was restarted (its sockets go with it), so a
message of an ended session, come after one of the session that replaced it, made
JupyterLab cancel the new session's messages it was still handling (a reply, a comm_open,
iopub its listeners never saw) and show the old kernel's ``idle`` while the new one started.
The old session's last messages (its running cell's ``SessionClosed`` end) come live from the
device, later than the new session's first ones whenever the device is slower than the
gateway. So a live message of another session than the one the socket delivers is held until
the store says which session is the kernel's current one (a replay, which moves on to a
newer session from its start): one of an ended session is dropped, as the store's replay
drops it for a client that comes back after a restart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.wire import Message

from ..subscription import Subscription
from . import wire

if TYPE_CHECKING:
    from .channels import ChannelsHandler


class Replay(Subscription):
    """A kernel's output for one socket; every delivery is the client's new position."""

    socket: ChannelsHandler
    #: A message of another session was held during the replay (see :meth:`replay`).
    other = False

    def offer(self, msg: Message) -> None:
        if self._other(msg) and not self.replaying:
            self.hold(msg)  # which session is current, the store says
            self.catch_up()
            return
        super().offer(msg)

    def deliver(self, msg: Message, text: str | None = None) -> int:
        if self._other(msg):
            self.other = True  # an ended session's, or a newer one's (then it is replayed)
            return 0
        sent = super().deliver(msg, text)
        if sent and self.session is not None:
            self.socket.delivered(self.session, self.last)
        return sent

    def tell_lost(self) -> None:
        """Jupyter's protocol has no word for it: a Jupyter client shows what it has."""

    def send(self, msg: Message, text: str) -> int:
        """A Jupyter client gets a kernel comm message's buffers too; no other message's
        (a file's bytes, on the live feed for the page's file URL, are no Jupyter buffers)."""
        buffers = [bytes(b) for b in msg.get("buffers") or ()] \
            if msg["msg_type"] in wire.COMM_OUTPUT else []
        self.socket.send(text, buffers)
        return len(text) + sum(len(b) for b in buffers)

    async def replay(self) -> None:
        """:meth:`Subscription.replay`, again while what waited meanwhile held a message of
        another session (a newer session's is replayed from the store, from its start)."""
        while True:
            self.other = False
            await super().replay()
            if not self.other or self.socket.outbox.closed:
                return

    def _other(self, msg: Message) -> bool:
        """Whether ``msg`` is of another session than the one this socket delivers."""
        return self.session is not None and msg["metadata"]["cellbus"].get(
            "session") != self.session

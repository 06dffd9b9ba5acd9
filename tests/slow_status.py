"""``cellbus status ARGS`` paused between connecting to the broker and sending its request
until that connection is gone (or :data:`PAUSE`): what a loaded machine does by chance when
the broker ends the link at once (a client without CURVE keys at a broker with them, or the
reverse).

ZeroMQ ends such a link for good (a mechanism mismatch is a protocol error: no reconnect),
so the status's DEALER has no peer left when it sends. Run as ``python tests/slow_status.py
ARGS``; exits with the status's exit status.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import zmq

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

import broker.status as status  # noqa: E402
from protocol.wire import Session  # noqa: E402

#: Seconds the pause waits at most for the link to go. Where the broker closes first, the
#: status sees a disconnect, not a protocol error, and ZeroMQ connects again keeping the
#: DEALER's pipe (it can still send): on a loaded machine that went on for more than 20 s
#: in a whole run. The status then sends as it would have, and must answer within its
#: timeout all the same.
PAUSE = 10.0
sockets: list[zmq.Socket[bytes]] = []


class WatchedContext(zmq.Context[zmq.Socket[bytes]]):
    """A context that keeps the sockets it makes, for the pause to look at."""

    def socket(self, *args: Any, **kwargs: Any) -> Any:
        sock = super().socket(*args, **kwargs)
        sockets.append(sock)
        return sock


class PausedSession(Session):
    """Its first ``serialize`` (the request, made after the connect) waits until the status's
    DEALER can no longer send (the broker ended the link and ZeroMQ took the peer away), or
    :data:`PAUSE` seconds."""

    paused = False

    def serialize(self, *args: Any, **kwargs: Any) -> list[bytes]:
        if not PausedSession.paused:
            PausedSession.paused = True
            dealer = next(s for s in sockets if s.socket_type == zmq.DEALER)
            deadline = time.monotonic() + PAUSE
            while dealer.getsockopt(zmq.EVENTS) & zmq.POLLOUT and (  # type: ignore[operator]
                    time.monotonic() < deadline):
                time.sleep(0.01)
        return super().serialize(*args, **kwargs)


if __name__ == "__main__":
    status.zmq.Context = WatchedContext  # type: ignore[misc]
    status.Session = PausedSession  # type: ignore[misc]
    sys.exit(status.main(sys.argv[1:]))

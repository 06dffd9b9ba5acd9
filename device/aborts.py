"""``stop_on_error``: the execute_requests queued behind one that failed are aborted, not run.

A Jupyter kernel (ipykernel) that ends an ``execute_request`` with an error, when the request
asked ``stop_on_error`` (the messaging spec's default: true) and was not ``silent``, answers
every ``execute_request`` already queued behind it with an ``execute_reply`` of status
``aborted`` (between ``status`` busy and idle, with no ``execute_input`` and no execution),
so a notebook's "Run All" stops at the failing cell; one sent after the error reply runs.

In cellbus a session's queue is not in the kernel but on the bus: a request waits in the
broker's store or in its device's queue (:class:`device.workers.Worker`), and the kernel
only ever sees one at a time. So the abort is decided where a request is about to start,
the device, from two facts that survive a broker restart because they are in the request
itself and in the device's memory:

- the broker stamps each execute_request it accepts with ``metadata.cellbus.behind``: the
  msg_id of the session's latest execute_request still unfinished at that moment, which
  this one queues behind (none if the session was idle: see broker/intake.py), and the one
  a Jupyter client sent before it and had no reply to yet, which its gateway names
  (gateway/jupyter/execute.py): "Run All" sends every cell before any reply comes, but they
  are accepted one at a time, and a first cell that fails fast may end before the last
  ones are accepted;
- the device notes each request that stops the ones behind it (:meth:`Aborts.ended`):
  one whose session replied with an error, with ``stop_on_error``, and each one aborted
  because of it. A request whose worker died under it (a crash, a limit, a timeout) stops
  nothing: as before, the queued ones run in the session's fresh worker, which says that
  the variables are gone (a Jupyter kernel that dies answers its queue never at all).

A request is aborted when the one it queued behind stops those behind it (so an abort runs
down the whole queue that was sent before the error was stored), whichever backend the
session runs (the built-in one, ipykernel, IRkernel...). A request accepted after the
error's reply was stored queued behind nothing unfinished, or behind the aborted ones that
follow it only if it was sent before their replies: as ipykernel, which aborts what reached
its queue while it aborted.
"""

from __future__ import annotations

import collections
from typing import Any

from protocol import msgtypes as mt
from protocol.requests import behind
from protocol.wire import Message

#: Requests remembered per session as stopping those behind them (the newest).
MAX_PER_SESSION = 256
#: Sessions remembered (the most recently noted).
MAX_SESSIONS = 4096


def stops_on_error(request: Message) -> bool:
    """Whether ``request`` failing aborts those queued behind it: an execute_request that
    is not silent and did not ask ``stop_on_error: false``."""
    content: Any = request.get("content")
    if request.get("msg_type") != mt.EXECUTE_REQUEST or not isinstance(content, dict):
        return False
    return content.get("silent") is not True and content.get("stop_on_error") is not False


class Aborts:
    """Per session, the requests that stop the ones queued behind them."""

    def __init__(self) -> None:
        self._stopping: collections.OrderedDict[str, collections.OrderedDict[str, None]] = \
            collections.OrderedDict()

    def _note(self, session_id: str, msg_id: str) -> None:
        stopping = self._stopping.get(session_id)
        if stopping is None:
            stopping = self._stopping[session_id] = collections.OrderedDict()
        self._stopping.move_to_end(session_id)
        stopping[msg_id] = None
        if len(stopping) > MAX_PER_SESSION:
            stopping.popitem(last=False)
        if len(self._stopping) > MAX_SESSIONS:
            self._stopping.popitem(last=False)

    def ended(self, session_id: str, request: Message, failed: bool) -> None:
        """``request`` of the session finished (``failed``: its reply's status was not ok)."""
        if failed and stops_on_error(request):
            self._note(session_id, str(request.get("msg_id")))

    def aborts(self, session_id: str, request: Message) -> bool:
        """Whether ``request``, about to start, is to be answered ``aborted`` instead: an
        execute_request queued behind one that stops those behind it. It then stops the
        ones behind it in turn."""
        if request.get("msg_type") != mt.EXECUTE_REQUEST:
            return False
        stopping = self._stopping.get(session_id)
        if stopping is None or not any(before in stopping for before in behind(request)):
            return False
        self._note(session_id, str(request.get("msg_id")))
        return True

    def forget(self, session_id: str) -> None:
        """The session is gone: nothing of it is queued any more."""
        self._stopping.pop(session_id, None)

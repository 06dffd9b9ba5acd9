"""A request's life on the bus, as every node must see it: who a message about it is from,
when it is finished, and how it ends when it fails outside the session.

Three nodes decide these things about the same request: the device (its worker runs one
request at a time and starts the next when this one is finished), the broker (it marks the
request done or error when it is finished, also after a restart from what it stored) and,
when a worker dies or a device is lost, whichever node notices. If they disagreed, a device
would start the next cell while the broker still shows the last one running, or the other
way round. So the rules live here, once:

- **Stamping** (:func:`stamp`): a message from session S about request R has
  ``header.session = S``, answers R (``parent_header``), and carries R's routing facts
  (``metadata["cellbus"]``: user, worksheet, cell_id...) with ``session`` and ``device`` set
  by the node that knows them.
- **Finished** (:class:`Ending`): an ``execute_request`` or ``interact_request`` (a *run*)
  is finished by its reply (``execute_reply``/``interact_reply``) followed by the ``status``
  ``idle`` after it, because output may still come between the two; a client's comm message
  (``comm_open``, ``comm_msg``...: Jupyter gives most of them no reply) by that ``idle``;
  any other request is finished by its reply. The reply's ``status`` says whether it went
  well (:class:`Outcome`).
- **Failing** (:func:`failed`): a request that cannot run, or whose worker or device is gone,
  ends with an ``error``, a failed reply of its own type and ``idle``: the same three
  messages a session sends when code raises, so every client shows them the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from . import msgtypes as mt
from .wire import Message, Session

#: Requests whose output goes on after their reply: they end at the idle status after it.
RUN_REQUESTS = frozenset({mt.EXECUTE_REQUEST, mt.INTERACT_REQUEST})
#: The replies of run requests.
RUN_REPLIES = frozenset({mt.EXECUTE_REPLY, mt.INTERACT_REPLY})


class Outcome(NamedTuple):
    """How a finished request went: ``ok``, or the ``error`` its reply names."""

    ok: bool
    #: ``"ename: evalue"`` of a reply whose status is not ok, else None.
    error: str | None


#: The routing fact of an execute_request naming the ones it queued behind (the broker sets
#: it, the device reads it: device/aborts.py; a gateway names one to the broker, as its client
#: sees it); a fact of the request only, not of its output.
BEHIND = "behind"
#: What a request aborted by ``stop_on_error`` ended with (device/aborts.py).
ABORTED_ERROR = "Aborted: not run, because a cell queued before it failed (stop_on_error)"


def outcome(reply: Mapping[str, Any]) -> Outcome:
    """What the content of a request's reply says about how it went."""
    if reply.get("status") == "ok":
        return Outcome(True, None)
    if reply.get("status") == "aborted":
        return Outcome(False, ABORTED_ERROR)
    return Outcome(False, f"{reply.get('ename', 'Error')}: {reply.get('evalue', '')}")


def is_idle(msg_type: str, content: Mapping[str, Any]) -> bool:
    """True for the ``status`` message that says the session is idle again."""
    return msg_type == mt.STATUS and content.get("execution_state") == "idle"


def reply_type(request_type: str) -> str:
    """The reply that answers a request of ``request_type`` (``execute_reply`` for a type
    that has no reply of its own)."""
    reply = request_type.removesuffix("_request") + "_reply"
    return reply if reply in mt.REPLY_TYPES else mt.EXECUTE_REPLY


class Ending:
    """Follows the messages about one request, in order, and says when it is finished."""

    def __init__(self, request_type: str) -> None:
        #: Whether the request ends at the idle after its reply (a run) or at its reply.
        self.run = request_type in RUN_REQUESTS
        self._replies = RUN_REPLIES if self.run else mt.REPLY_TYPES
        #: A comm message or a query: finished by the idle status, reply or not.
        self.comm = request_type in mt.KERNEL_REQUEST_TYPES
        #: The content of the request's reply, once it is in (the latest, if several).
        self.reply: Mapping[str, Any] | None = None

    @property
    def replied(self) -> bool:
        return self.reply is not None

    def see(self, msg_type: str, content: Mapping[str, Any]) -> Outcome | None:
        """Note the next message about the request; its outcome if that one finished it."""
        if self.comm:
            return Outcome(True, None) if is_idle(msg_type, content) else None
        if msg_type in self._replies:
            self.reply = content
            return None if self.run else outcome(content)
        if self.run and self.reply is not None and is_idle(msg_type, content):
            return outcome(self.reply)
        return None


class Endings:
    """The broker's view over the output of many run requests at once: each one whose reply
    is in is followed (by msg_id) until the idle after it, then forgotten."""

    def __init__(self) -> None:
        self._replied: dict[str, Ending] = {}

    def __len__(self) -> int:
        return len(self._replied)

    def see(self, parent: str, msg_type: str, content: Mapping[str, Any]) -> Outcome | None:
        """Note a message about the run request ``parent``; its outcome if it finished it."""
        ending = self._replied.get(parent)
        if ending is None:
            if msg_type not in RUN_REPLIES:
                return None  # nothing to follow before the reply: no entry, nothing to leak
            ending = self._replied[parent] = Ending(mt.EXECUTE_REQUEST)
        result = ending.see(msg_type, content)
        if result is not None:
            del self._replied[parent]
        return result


def behind(request: Message) -> list[str]:
    """The msg_ids the broker says ``request`` queued behind (:data:`BEHIND`)."""
    metadata = request.get("metadata")
    facts = metadata.get("cellbus") if isinstance(metadata, dict) else None
    found = facts.get(BEHIND) if isinstance(facts, dict) else None
    return [i for i in found if isinstance(i, str)] if isinstance(found, list) else []


def stamp(bus: Session, request: Message, msg_type: str, content: dict[str, Any], *,
          session: str, device: str | None, buffers: list[bytes] | None = None,
          metadata: dict[str, Any] | None = None) -> Message:
    """A message (signed when it is sent) from ``session`` about ``request``: header.session is the
    session, ``parent_header`` the request's header, and metadata["cellbus"] the request's
    routing facts with ``session`` and ``device`` set (next to ``metadata``'s other keys)."""
    header = bus.msg_header(msg_type)
    header["session"] = session
    of_request = request.get("metadata")
    facts = of_request.get("cellbus") if isinstance(of_request, dict) else None
    facts = dict(facts) if isinstance(facts, dict) else {}
    facts.pop(BEHIND, None)
    facts.update(session=session, device=device)
    msg = bus.msg(msg_type, content, parent=request, header=header,
                  metadata={**(metadata or {}), "cellbus": facts})
    if buffers:
        msg["buffers"] = buffers
    return msg


def aborted(bus: Session, request: Message, *, session: str, device: str | None
            ) -> list[Message]:
    """The messages that answer an ``execute_request`` aborted by ``stop_on_error``
    (device/aborts.py), as ipykernel answers one: ``status`` busy, an ``execute_reply`` of
    status ``aborted`` (its metadata says so too) and idle; no ``execute_input``, nothing
    run, no execution count taken."""
    status = {"status": "aborted"}
    return [stamp(bus, request, msg_type, content, session=session, device=device,
                  metadata=metadata)
            for msg_type, content, metadata in (
                (mt.STATUS, {"execution_state": "busy"}, None),
                (mt.EXECUTE_REPLY, dict(status), dict(status)),
                (mt.STATUS, {"execution_state": "idle"}, None))]


def failed(bus: Session, request: Message, ename: str, evalue: str, *, session: str,
           device: str | None, reply_metadata: dict[str, Any] | None = None) -> list[Message]:
    """The messages that end ``request`` with the error ``ename: evalue``: an ``error``, a
    failed reply of the request's type (with ``reply_metadata``) and ``idle``, each stamped
    as from ``session``."""
    error = {"ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}
    reply = {"status": "error", "execution_count": None, **error}
    return [stamp(bus, request, msg_type, content, session=session, device=device,
                  metadata=metadata)
            for msg_type, content, metadata in (
                (mt.ERROR, error, None),
                (reply_type(str(request.get("msg_type", ""))), reply, reply_metadata),
                (mt.STATUS, {"execution_state": "idle"}, None))]

"""The records a store keeps, the request statuses and the transitions allowed between them.

The records mirror the bus's channels: a :class:`Request` is a shell message (an
``execute_request`` or ``interact_request``) with its progress; iopub messages are stored
whole, keyed by ``(session, seq)``; :class:`SessionRecord` and :class:`DeviceRecord` are the
broker's routing tables.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

from .errors import InvalidTransition

NEEDS_WORK: Final = "needs_work"
WORKING: Final = "working"
DONE: Final = "done"
ERROR: Final = "error"
SUPERSEDED: Final = "superseded"

STATUSES: Final = frozenset({NEEDS_WORK, WORKING, DONE, ERROR, SUPERSEDED})
FINAL: Final = frozenset({DONE, ERROR, SUPERSEDED})
#: status -> the statuses it may move to; ``working -> needs_work`` is the hand-back of a
#: request whose device drained or was lost.
TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    NEEDS_WORK: frozenset({WORKING, SUPERSEDED, ERROR}),
    WORKING: frozenset({DONE, ERROR, NEEDS_WORK}),
    DONE: frozenset(),
    ERROR: frozenset(),
    SUPERSEDED: frozenset(),
}

EXECUTE_REQUEST: Final = "execute_request"
INTERACT_REQUEST: Final = "interact_request"

OPEN: Final = "open"
CLOSED: Final = "closed"
#: A session whose worksheet's runs are being deleted: its messages go a part at a time
#: after the first write (:meth:`~broker.store.base.Store.delete_worksheet`), and a broker
#: that stopped before the last one finishes them at its next start (broker/deletion.py).
DELETING: Final = "deleting"


class AnyDevice(enum.Enum):
    """Type of :data:`ANY`, the ``device`` filter that matches placed and unplaced requests."""

    ANY = "any"


#: ``requests(status, device=ANY)``: any device; ``device=None``: only unplaced requests.
ANY: Final = AnyDevice.ANY
DeviceFilter = str | None | Literal[AnyDevice.ANY]


def check_transition(msg_id: str, old: str, new: str) -> None:
    """Raise :class:`InvalidTransition` unless a request may go from ``old`` to ``new``."""
    allowed = TRANSITIONS.get(old, frozenset())
    if new not in allowed:
        raise InvalidTransition(msg_id, old, new, allowed)


_Record = TypeVar("_Record", "Request", "SessionRecord")


def copied(record: _Record, **changes: Any) -> _Record:
    """A copy of ``record`` with ``changes``: what ``dataclasses.replace`` gives for these
    plain dataclasses (every field in ``__init__``, no ``__post_init__``), for about half
    its instructions (it walks the class's fields on every call: 30 against 17 thousand for
    a Request, 17.5 against 7 for a SessionRecord). The broker copies a request or session
    about six times per execution (bench/RESULTS.md, issue 25, thirteenth pass)."""
    return type(record)(**{**record.__dict__, **changes})


@dataclass
class Request:
    """A shell request and its progress; ``message`` is the whole Jupyter message."""

    msg_id: str
    session: str
    user: str
    worksheet: str
    cell_id: str
    msg_type: str  # EXECUTE_REQUEST or INTERACT_REQUEST
    input: str  # the code; "" for an interact_request
    message: dict[str, Any]
    status: str = NEEDS_WORK
    device: str | None = None
    created: float = 0.0  # time.time(); the store sets it when 0
    started: float | None = None  # set on -> working
    finished: float | None = None  # set on -> done | error | superseded
    error: str | None = None
    interact_id: str | None = None
    state: int | None = None  # an interact_request's increasing state number


@dataclass(frozen=True)
class Progress:
    """Where a request stands after a status change: the fields of :class:`Request` that a
    change moves. ``Store.append_and_update`` returns these rather than whole requests, so a
    write that moves many requests along does not read each one's message back."""

    msg_id: str
    status: str
    device: str | None
    started: float | None
    finished: float | None
    error: str | None

    @classmethod
    def of(cls, request: Request) -> Progress:
        return cls(request.msg_id, request.status, request.device, request.started,
                   request.finished, request.error)

    def applied(self, request: Request) -> Request:
        """``request`` (the same msg_id) as this progress leaves it."""
        return copied(request, status=self.status, device=self.device, started=self.started,
                       finished=self.finished, error=self.error)


@dataclass
class SessionRecord:
    """A session (the seed's computation id): which worksheet it serves and on which device."""

    session: str
    user: str
    worksheet: str
    device: str | None
    state: str  # OPEN or CLOSED
    created: float
    last_activity: float


@dataclass
class DeviceRecord:
    """A device as the broker last heard of it."""

    device: str
    capacity: int
    load: int
    last_heartbeat: float
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class UserRecord:
    """A user of a gateway with ``--auth token``: the SHA-256 of their token, never the token."""

    name: str
    token_hash: str
    created: float


@dataclass
class PermalinkRecord:
    """Code someone shared by link (``/?q=ID``): it belongs to no session and outlives them.
    ``owner`` is who made it ("" if no token named them), for the per-user quota."""

    id: str
    code: str
    #: The interact state to open it with (controls' values by name), if any.
    interact: dict[str, Any] | None
    owner: str
    created: float


@dataclass
class DeletedRuns:
    """What :meth:`~broker.store.base.Store.delete_worksheet` removed of one worksheet."""

    #: Its execute and interact requests.
    requests: int
    #: The messages of its sessions (output, echoes, replies, status).
    messages: int
    #: Whether it had a layout.
    layout: bool
    #: Its Jupyter clients' delivery positions.
    deliveries: int

    @property
    def nothing(self) -> bool:
        """True when the worksheet had nothing stored."""
        return not (self.requests or self.messages or self.layout or self.deliveries)

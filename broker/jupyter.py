"""The broker's side of the Jupyter API (gateway/jupyter/): kernels and delivery positions.

A Jupyter kernel is a worksheet of its user whose name is the kernel id; it exists while the
worksheet has an open session whose worker has not ended (or that has work to run).
``kernel_list_request`` lists them (or one) with what a kernel model shows: activity, the
cells still running (busy) or none (idle), and the Jupyter session (path, name, type) its
first request named.

``delivery_request`` keeps, per (worksheet, channels client ``session_id``), the last
output message delivered to that client, so a client that reconnects, to this gateway or to
another after a restart, gets everything after it and nothing twice; a client with no
position starts at the running execution's first output (or, with nothing running, live).
"""

from __future__ import annotations

import collections
import uuid
from typing import Any

from protocol import msgtypes as mt
from protocol.address import is_name
from protocol.kernels import DEFAULT_KERNEL, kernel_of
from protocol.recent import forget_oldest
from protocol.wire import Message

from .budget import StoreBudget
from .refusal import Address, Refused, Reply
from .sessions import OpenSessions
from .store import OPEN, SessionRecord, Store
from .store._user_bytes import delivery_size


#: Longest channels client id (Jupyter's ``session_id``) kept.
MAX_CLIENT = 128
#: Sessions whose first request's facts are remembered.
REMEMBERED = 10_000
#: Position rows remembered as stored (see :meth:`JupyterKernels._new_row`).
KNOWN_CLIENTS = 10_000
#: The last messages of a session read for its state: its last run's reply is among them
#: (a reply, then its idle status).
LAST_LOOK = 4
#: The ename of a run whose kernel did not start (session/starting.py).
START_ERROR = "BackendStartError"


def is_kernel_id(name: str) -> bool:
    """Whether a worksheet name is a kernel id (a UUID, as Jupyter makes them)."""
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False


class JupyterKernels:
    def __init__(self, store: Store, sessions: OpenSessions,
                 budget: StoreBudget | None = None) -> None:
        self.store, self.sessions = store, sessions
        #: session -> what its first request said (see :meth:`_first`), least recent first.
        self.firsts: collections.OrderedDict[str, tuple[dict[str, Any] | None, str]] = (
            collections.OrderedDict())
        #: Each client's position is a row the user keeps (``--user-output``); the client
        #: ids are theirs to make up.
        self.budget = budget
        #: Position rows this broker stored (a client's next position replaces its row, and
        #: is not read first), oldest first.
        self._known: collections.OrderedDict[tuple[str, str, str], None] = (
            collections.OrderedDict())

    def forget(self, user: str, worksheet: str) -> None:
        """The worksheet's delivery positions were deleted (broker/deletion.py): a client's
        next one is a new row again, counted."""
        self._known = collections.OrderedDict(
            (k, v) for k, v in self._known.items() if k[:2] != (user, worksheet))

    async def _new_row(self, user: str, worksheet: str, client: str, session: str) -> int:
        """Bytes a position adds to what ``user`` keeps (0: its client has a row already,
        or nothing counts bytes); :class:`Refused` if they would pass ``--user-output``."""
        if (self.budget is None or not self.budget.quota
                or (user, worksheet, client) in self._known
                or await self.store.delivery(user, worksheet, client) is not None):
            return 0
        size = delivery_size(worksheet, client, session)
        await self.budget.room(user, size, "delivery position")
        return size

    async def list(self, msg: Message, address: Address) -> Reply:
        """The user's kernels, or the one named by ``worksheet`` (none if it has no open
        session)."""
        user = address[0]
        want = msg["content"].get("worksheet")
        if want is not None:
            if not is_name(want):
                raise Refused(400, "worksheet must be a name")
            record = await self.sessions.find(user, want)
            records = [record] if record is not None else []
        else:
            records = [r for r in await self.store.sessions(OPEN)
                       if r.user == user and is_kernel_id(r.worksheet)]
        models = [await self._model(r) for r in records]
        return {"kernels": [m for m in models if m is not None]}, []

    async def _model(self, record: SessionRecord) -> dict[str, Any] | None:
        """The kernel's entry; None if it is dead (:meth:`_worker_ended`); with a
        ``reason`` if its start failed."""
        running = [r.cell_id for r in await self.store.unfinished_requests(record.session)]
        ended, reason = (False, None) if running else await self._worker_ended(record.session)
        if ended:
            return None
        about, kernel = await self._first(record.session)
        entry = {"worksheet": record.worksheet, "session": record.session,
                 "created": record.created, "last_activity": record.last_activity,
                 "running": running, "jupyter_session": about, "kernel": kernel}
        return entry if reason is None else {**entry, "reason": reason}

    async def _worker_ended(self, session: str) -> tuple[bool, str | None]:
        """Whether the session's worker ended (the last message stored for it is the
        ``session_closed`` note: an idle timeout, a device stopped or lost, the end of an
        earlier run of the chain). With nothing of it left to run, its kernel is dead: not
        listed, as jupyter_server removes a kernel that died or was culled, so that a client
        is told (@jupyterlab/services shuts down its connections to a kernel no longer
        listed) rather than finding its variables gone in a fresh worker. And why its last
        request failed if its kernel did not start (a ``BackendStartError``: the worker
        lives on and tries again on the next run), else None: jupyter_server lists such a
        kernel as ``dead`` with that ``reason``, where it was ``idle`` (usable)."""
        last = await self.store.last_seq(session)
        rows = await self.store.messages(session, since=max(last - LAST_LOOK, 0),
                                         limit=LAST_LOOK) if last else []
        if rows and rows[-1][1]["msg_type"] == mt.SESSION_CLOSED:
            return True, None
        for _, msg in reversed(rows):
            if msg["msg_type"] == mt.EXECUTE_REPLY:
                content = msg.get("content")
                if isinstance(content, dict) and content.get("ename") == START_ERROR:
                    return False, str(content.get("evalue", ""))
                break
        return False, None

    async def _first(self, session: str) -> tuple[dict[str, Any] | None, str]:
        """What the session's first request said: the Jupyter session (path, name, type)
        that started the kernel, and the kernel. Read once per session (a session can run
        many thousands of requests, and clients list kernels every few seconds)."""
        if session in self.firsts:
            self.firsts.move_to_end(session)
            return self.firsts[session]
        requests = await self.store.session_requests(session)
        if not requests:
            return None, DEFAULT_KERNEL
        content = requests[0].message.get("content")
        about = content.get("jupyter_session") if isinstance(content, dict) else None
        facts = (about if isinstance(about, dict) else None,
                 kernel_of(requests[0].message["metadata"]))
        self.firsts[session] = facts
        if len(self.firsts) > REMEMBERED:
            self.firsts.popitem(last=False)
        return facts

    async def delivery(self, msg: Message, address: Address) -> Reply:
        """Store a client's position (``seq`` given) or read it with where to start."""
        user, worksheet = address[:2]
        content = msg["content"]
        client = content.get("client")
        if not isinstance(client, str) or not 0 < len(client) <= MAX_CLIENT:
            raise Refused(400, f"client must be a string of 1 to {MAX_CLIENT} characters")
        seq = content.get("seq")
        if seq is not None:
            session = content.get("session")
            if type(seq) is not int or not 0 <= seq <= mt.MAX_SEQ or not isinstance(
                    session, str):
                raise Refused(400, "a position is a session and a non-negative seq")
            size = await self._new_row(user, worksheet, client, session)
            await self.store.put_delivery(user, worksheet, client, session, seq)
            if self.budget is not None and size:
                self.budget.add(user, size)
                self._known[(user, worksheet, client)] = None
                forget_oldest(self._known, KNOWN_CLIENTS)
            return {"position": [session, seq]}, []
        record = await self.sessions.find(user, worksheet)
        position = await self.store.delivery(user, worksheet, client)
        if record is None:
            return {"session": None, "position": position, "start": 0}, []
        return {"session": record.session, "position": position,
                "start": await self._start(record.session)}, []

    async def _start(self, session: str) -> int:
        """The seq just before the first output of the oldest unfinished request, or the
        last seq when nothing runs."""
        for request in (await self.store.unfinished_requests(session))[:1]:
            rows = await self.store.messages(session, parent=request.msg_id, limit=1)
            if rows:
                return rows[0][0] - 1
        return await self.store.last_seq(session)

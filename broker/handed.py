"""The requests this broker process handed to devices (:class:`Handed`), owned by
:class:`broker.dispatch.Dispatch` and read by the parts that reconcile a device's reports
and that let a session's output in."""

from __future__ import annotations


class Handed:
    """The requests this broker process handed to devices, numbered in the order handed, so
    that a device's report is reconciled only with what was handed out before it arrived."""

    def __init__(self) -> None:
        self._order: dict[str, int] = {}
        self._nonces: dict[str, str] = {}
        #: Session -> its requests handed out here -> the device each went to.
        self._sessions: dict[str, dict[str, str]] = {}
        self._session_of: dict[str, str] = {}
        self._count = 0

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._order

    def __len__(self) -> int:
        return len(self._order)

    def add(self, msg_id: str, nonce: str | None = None, *, session: str | None = None,
            device: str | None = None) -> None:
        """``msg_id`` is handed out (as the hand-out ``nonce``, if it is sent now; of
        ``session``, to ``device``, if known)."""
        if msg_id not in self._order:
            self._count += 1
            self._order[msg_id] = self._count
        if nonce is not None:
            self._nonces[msg_id] = nonce
        if session is not None and device is not None:
            self._session_of[msg_id] = session
            self._sessions.setdefault(session, {})[msg_id] = device

    def discard(self, msg_id: str) -> None:
        self._order.pop(msg_id, None)
        self._nonces.pop(msg_id, None)
        session = self._session_of.pop(msg_id, None)
        if session is not None:
            out = self._sessions[session]
            out.pop(msg_id, None)
            if not out:
                del self._sessions[session]

    def session_of(self, msg_id: str) -> str | None:
        """The session of handed-out ``msg_id``, if it was recorded."""
        return self._session_of.get(msg_id)

    def on(self, device: str) -> list[tuple[str, str]]:
        """(msg_id, session) of each request handed to ``device`` (and not ended there)."""
        return [(msg_id, session) for session, out in self._sessions.items()
                for msg_id, where in out.items() if where == device]

    def devices_of(self, session: str) -> set[str]:
        """The devices requests of ``session`` are handed to (and have not ended on)."""
        return set(self._sessions.get(session, {}).values())

    def nonce(self, msg_id: str) -> str | None:
        """The ``sent`` nonce of the hand-out of ``msg_id`` this process made last, if any."""
        return self._nonces.get(msg_id)

    def mark(self) -> int:
        """A point in the order: :meth:`since` tells what was handed out after it."""
        return self._count

    def since(self, msg_id: str, mark: int) -> bool:
        """True if ``msg_id`` is handed out and was handed after ``mark``."""
        return self._order.get(msg_id, 0) > mark

"""The requests this broker process handed to devices (:class:`Handed`), owned by
:class:`broker.dispatch.Dispatch` and read by the parts that reconcile a device's reports
and that let a session's output in.

Every message the broker sends a device's way that a report can be told by (each hand-out,
each heartbeat) carries :meth:`Handed.token` in ``metadata.cellbus.handed``: how many
hand-outs this process had written to its devices before it (one socket keeps their order).
A device reports the last token it has read (``heard``), and what it held then: a hand-out
numbered past it had not reached the device when it built the report, however late the
report arrives, and is not reconciled with it (:meth:`Handed.upto`). A device that registers
again builds its register as it reads the broker's first message, which may be a hand-out:
reconciled with it, that hand-out was taken for lost (a false DeviceLost, or handed out
twice). What such a report cannot tell (a hand-out it could not have seen, made before it
arrived: to an earlier process of the device, or in flight to this one) is in doubt until a
later report of the device has read past it; meanwhile its session's later requests wait
(:meth:`Handed.doubted`), so that none runs ahead of it."""

from __future__ import annotations

from typing import Any


class Handed:
    """The requests this broker process handed to devices, numbered in the order handed, so
    that a device's report is reconciled only with what was handed out before it arrived and
    that the device had read when it built it."""

    def __init__(self, epoch: str = "") -> None:
        #: Begins every token of this process: a token of a previous broker is told apart.
        self.epoch = epoch
        self._order: dict[str, int] = {}
        #: Hand-outs made before a report that could not have seen them arrived (see above).
        self._doubt: set[str] = set()
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
        self._doubt.discard(msg_id)
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

    def token(self) -> str:
        """What a message sent to a device now carries (``metadata.cellbus.handed``): every
        hand-out counted here was written to its device before that message, since messages
        to devices leave in the order they are sent (:meth:`BusSocket.send_frames`)."""
        return f"{self.epoch}:{self._count}"

    def upto(self, report: dict[str, Any]) -> int:
        """The hand-outs a device's ``report``, arriving now, is reconciled with: those up to
        the token it had read when it built the report (none of this process if it read none,
        or one of a previous broker's), never any made after it arrived. A device of a
        version that reports no ``heard`` (the broker is at least as new as its devices) is
        reconciled with every hand-out made before its report arrived, as it was."""
        if "heard" not in report:
            return self._count
        heard = report["heard"]
        if not isinstance(heard, str) or not heard.startswith(f"{self.epoch}:"):
            return 0
        number = heard[len(self.epoch) + 1:]
        return min(int(number), self._count) if number.isdecimal() else 0

    def doubt(self, msg_id: str) -> None:
        """A report arrived after ``msg_id`` was handed out but could not have seen it."""
        if msg_id in self._order:
            self._doubt.add(msg_id)

    def settle(self, msg_id: str) -> None:
        """A report that could see ``msg_id`` lists it: its device holds it."""
        self._doubt.discard(msg_id)

    def doubtful(self, device: str, upto: int) -> bool:
        """Whether a hand-out to ``device`` is in doubt that a report reconciled up to
        ``upto`` (:meth:`upto`) can settle."""
        return any(self._order.get(msg_id, 0) <= upto and self._sessions.get(
            self._session_of.get(msg_id, ""), {}).get(msg_id) == device for msg_id in self._doubt)

    def doubted(self, session: str) -> bool:
        """Whether a hand-out of ``session`` is in doubt: its later requests wait for it."""
        return bool(self._doubt) and any(msg_id in self._doubt
                                         for msg_id in self._sessions.get(session, {}))

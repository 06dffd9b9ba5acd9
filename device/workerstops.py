"""How a worker's running request is stopped: Stop (an interrupt, held until the worker
has begun the request), a limit it hit, the wall time it asked for, and a worker stopped by
SIGSTOP (continued). A part of :class:`device.workers.Worker`, kept apart by its one job; it
touches only the state declared below, which the worker sets.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Awaitable
from typing import Any

from protocol import msgtypes as mt
from protocol.asked import Asked, show
from protocol.wire import Message

from .launcher import ForkedProcess
from .stops import CONTINUED, CONTINUES, keep_continuing

log = logging.getLogger("cellbus.device")

#: Seconds a Stop waits for the worker to begin the request it was given (its backend may
#: still be starting: a researcher's ``__init__`` that never returns) before ending it.
UNBEGUN_STOP = 5.0


class Stopping:
    """The stopping half of a worker (mixed into :class:`device.workers.Worker`)."""

    proc: ForkedProcess
    session_id: str
    current: Message | None
    asked: Asked
    limit_hit: tuple[str, str] | None
    #: Whether the worker said busy for the running request, and whether an interrupt
    #: came before it did (it waits for the busy: see :meth:`interrupt`).
    _began: bool
    _interrupt_asked: bool

    def _emit(self, msg_type: str, content: dict[str, Any]) -> Awaitable[None]:
        raise NotImplementedError

    def _wall_passed(self, msg_id: str) -> None:
        """The wall time a request asked for has passed: stop it if it still runs."""
        if self.current is not None and self.current["msg_id"] == msg_id:
            wall = show("wall", self.asked["wall"])
            self.stop_for_limit("TimeLimitExceeded", f"this cell ran for longer than the {wall} "
                                "it asked for (limits.wall) and was stopped; the session "
                                "restarts fresh")

    def stop_for_limit(self, ename: str, evalue: str) -> None:
        """End the running request because it hit a limit: the worker is killed and the
        request fails with ``ename``/``evalue`` instead of WorkerDied."""
        if self.current is not None and self.limit_hit is None:
            self.limit_hit = (ename, evalue)
            self.proc.kill()

    def interrupt(self) -> bool:
        """SIGINT to the worker, which raises KeyboardInterrupt in the running code, then
        SIGCONT: a worker stopped by SIGSTOP (its own code, a debugger) goes on and takes
        it. Before the worker said busy for the request, the SIGINT waits for that busy: a
        worker drops one that comes before it takes up a request (session/interrupts.py)."""
        if self.current is None or self.proc.returncode is not None:
            return False
        if not self._began:
            self._interrupt_asked = True
            asyncio.get_running_loop().call_later(UNBEGUN_STOP, self._never_began,
                                                  self.current)
            return True
        self.proc.send_signal(signal.SIGINT)
        keep_continuing(self.proc, functools.partial(self._runs, self.current), CONTINUES)
        return True

    def _never_began(self, request: Message) -> None:
        """A Stop asked :data:`UNBEGUN_STOP` seconds ago, and the worker has still not begun
        ``request`` (it only takes a SIGINT once it has): it is ended, as by a limit."""
        if self._runs(request) and not self._began:
            self.stop_for_limit("KeyboardInterrupt", (
                f"Stop was asked, and this session had not begun the cell {UNBEGUN_STOP:g} s "
                "later (its kernel was still starting, or hung starting): its worker was "
                "ended, and the session restarts fresh"))

    def _runs(self, request: Message) -> bool:
        return self.current is request and self.proc.returncode is None

    async def _stopped(self, request: Message) -> None:
        """The worker stayed stopped while ``request`` ran (:mod:`device.stops`): continue it,
        and say so in the cell's output."""
        if not self._runs(request):
            return
        log.warning("worker %d of session %s was stopped while running a cell; continuing it",
                    self.proc.pid, self.session_id)
        self.proc.send_signal(signal.SIGCONT)
        await self._emit(mt.STREAM, {"name": "stderr", "text": CONTINUED})

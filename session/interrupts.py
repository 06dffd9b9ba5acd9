"""When SIGINT may become a ``KeyboardInterrupt`` inside a worker.

The overseer interrupts a running cell by sending SIGINT to the worker. Python's default
behaviour (raise ``KeyboardInterrupt`` in the main thread) is what user code should see, but
not while the worker is halfway through writing a record to its link, nor while it waits for
the next request. :class:`InterruptGuard` installs a handler that raises only while *armed*
(the worker is running a cell) and outside *critical* sections (writing to the link, updating
the output buffers); a SIGINT that arrives elsewhere during a request is held and raised at the
next safe point. Touches only the SIGINT handler of the process.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType


class InterruptGuard:
    """A SIGINT handler that raises ``KeyboardInterrupt`` only where it is safe to."""

    def __init__(self) -> None:
        self._main = threading.main_thread().ident
        self._armed = False
        self._pending = False
        self._depth = 0

    def install(self) -> None:
        """Become the process's SIGINT handler (call from the main thread)."""
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._armed and self._depth == 0:
            self._pending = False
            raise KeyboardInterrupt
        self._pending = True

    def start_request(self) -> None:
        """Forget interrupts that arrived while idle: they were meant for no cell."""
        self._pending = False

    def arm(self) -> None:
        """User code is about to run; raises at once if an interrupt arrived meanwhile."""
        self._armed = True
        if self._pending:
            self._pending = False
            raise KeyboardInterrupt

    def disarm(self) -> None:
        """User code has finished; later interrupts are held (and dropped at idle)."""
        self._armed = False

    def __enter__(self) -> None:
        # Critical section: only the main thread ever receives KeyboardInterrupt.
        if threading.get_ident() == self._main:
            self._depth += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if threading.get_ident() != self._main:
            return
        self._depth -= 1
        if self._depth == 0 and self._pending and self._armed and exc_type is None:
            self._pending = False
            raise KeyboardInterrupt


def main_thread_only() -> None:
    """Block SIGINT in the calling thread, one of the worker's own (the output flusher, the
    descriptor readers), so that only the main thread, the one that runs the cell, takes
    an interrupt. The kernel hands a SIGINT sent to the process to any thread that does not
    block it: Python runs its handler in the main thread all the same, but only a SIGINT
    the main thread took itself ends the blocking call it is in (a ``time.sleep``). A
    worker whose threads were all stopped (SIGSTOP) gives a pending SIGINT to whichever
    thread the SIGCONT lets run first."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

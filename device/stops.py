"""Notice a worker that is stopped (SIGSTOP, SIGTSTP...) while its cell runs, and continue it.

Code in a session can stop its own process (``os.kill(os.getpid(), signal.SIGSTOP)``), or a
terminal-less job-control signal can; inside the sandbox nobody but the device can continue
it, so its cell hung until ``--exec-timeout`` or a Stop, with nothing said. The device looks at
the worker's state in ``/proc`` while a request runs, as it looks at its memory
(:class:`device.usage.MemoryWatch`), and once the worker has stayed stopped across two looks
it sends SIGCONT (the sandbox's init passes it on, and a Jupyter kernel's worker to its
kernel) and says so in the cell's output: the cell goes on and ends with all its output, as
if it had not stopped. A stop under a debugger (state ``t``, traced) is left alone, and so is
one deeper down (a process the cell's code started and stopped).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from .launcher import ForkedProcess
from .usage import children

#: Seconds between two looks at a running worker's state; a worker stopped this long, or up
#: to twice as long, is continued.
STOP_CHECK = 0.5
#: What a cell is told when its worker was stopped and the device continued it.
CONTINUED = ("\ncellbus: this cell's process was stopped (SIGSTOP or a job-control signal) "
             "and nothing could continue it but the device, which did.\n")
#: SIGCONTs an interrupt sends (see :func:`keep_continuing`), and the seconds between them.
CONTINUES, CONTINUE_EVERY = 5, 0.5


def keep_continuing(proc: ForkedProcess, running: Callable[[], bool], left: int) -> None:
    """SIGCONT to ``proc`` now, and again every :data:`CONTINUE_EVERY` seconds (``left``
    times in all) while ``running()`` (its request still runs): in whole test runs a
    stopped worker now and then stayed stopped after the first one (not seen when its test
    ran alone); a SIGCONT to a process that runs does nothing."""
    if not running():
        return
    proc.send_signal(signal.SIGCONT)
    if left > 1:
        asyncio.get_running_loop().call_later(CONTINUE_EVERY, keep_continuing, proc, running,
                                              left - 1)


def stopped(pid: int, depth: int = 1) -> bool:
    """Whether ``pid`` or a process up to ``depth`` levels below it (the worker, under the
    sandbox's init; a Jupyter kernel, under its worker) is stopped by a signal (``T``)."""
    level = [pid]
    below: list[int] = []
    for _ in range(depth):
        level = [c for p in level for c in children(p)]
        below.extend(level)
    for p in [pid, *below]:
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # ended meanwhile
        if state == b"T":
            return True
    return False


class StopWatch:
    """Looks at a worker's state every :data:`STOP_CHECK` seconds while ``running()`` (its
    request runs), and awaits ``on_stopped`` once it has been seen stopped twice in a row.
    The looks run on a timer of the loop: most cells end before the first."""

    def __init__(self, pid: int, running: Callable[[], bool],
                 on_stopped: Callable[[], Awaitable[None]], *, depth: int = 1) -> None:
        self.pid, self.depth = pid, depth
        self.running, self.on_stopped = running, on_stopped
        self._loop = asyncio.get_running_loop()
        self._seen = False
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(STOP_CHECK, self._look)
        self._task: asyncio.Task[None] | None = None

    def _look(self) -> None:
        self._timer = None
        if not self.running():
            return
        now = stopped(self.pid, self.depth)
        if now and self._seen:
            self._task = self._loop.create_task(self._continue(), name=f"stops.{self.pid}")
            return
        self._seen = now
        self._timer = self._loop.call_later(STOP_CHECK, self._look)

    async def _continue(self) -> None:
        await self.on_stopped()
        self._seen = False
        self._timer = self._loop.call_later(STOP_CHECK, self._look)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()

"""The end of a session's worker, in words: why it ended, and the one log line of it.

A worker's end passes through several layers: the one that ends it (a close asked for, the
idle sweep, the drain, a limit), the worker's pump (which fails the cell it ran), the
overseer, and the router (which tells the broker). Each once logged it, so one end was up
to four lines. Now only the overseer logs it, with :func:`log_end`, once the worker is gone
and all of it is known.
"""

from __future__ import annotations

import logging
import time

from .workers import Worker

log = logging.getLogger("cellbus.device")


def log_end(worker: Worker) -> None:
    """The one line of ``worker``'s end. A close asked for is news; an end by a limit or a
    death is a warning, with the error of the cell it ran then (a limit's own words say
    which limit it was and how to change it)."""
    if worker.abandoned:
        log.warning("device %s: the broker took this device for lost while it was silent and "
                    "ended session %s's work (%s); its worker is ended too (worker %d)",
                    worker.device_id, worker.session_id, worker.closing_reason, worker.pid)
        return
    if worker.closing_reason is not None and worker.limit_hit is None:
        how = (f"mid-execution ({worker.failed_running})" if worker.failed_running
               else f"idle {time.monotonic() - worker.last_used:.0f} s")
        log.info("device: session %s closed (%s): worker %d, %s", worker.session_id,
                 worker.closing_reason, worker.pid, how)
        return
    running = ""
    if worker.limit_hit is not None:
        running = f" mid-execution: {worker.limit_hit[1]}"
    elif worker.failed_running is not None:
        running = f" mid-execution ({worker.failed_running})"
    log.warning("device: session %s ended: its worker %d %s%s", worker.session_id, worker.pid,
                why_ended(worker), running)


def why_ended(worker: Worker) -> str:
    """Why ``worker`` ended by itself, by a limit or at the drain's deadline, as its
    session's next worker says."""
    if worker.violation is not None:  # the device ended it (a kill, between cells too)
        return f"was stopped for a LinkViolation: it sent the device {worker.violation}"
    if worker.limit_hit is not None:
        return f"was stopped ({worker.limit_hit[0]})"  # a limit's name, or DrainTimeout
    if worker.proc.oom_killed:
        return ("ran out of memory (its own --max-memory, or the device's --memory-budget for "
                "all sessions together) and was stopped")
    return worker.exit_reason or "exited"

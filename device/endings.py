"""Why a worker's request ended as it did, in words for the cell that ran it.

The device knows what the worker cannot say about itself: which limit an error or an exit
came from (the device's limits, :mod:`device.limits`, or those the request asked for,
:mod:`protocol.asked`) and how the process ended. :mod:`device.workers` adds these to the
error a cell shows.
"""

from __future__ import annotations

import signal
from typing import Any

from protocol.asked import Asked, show
from protocol.processes import how_ended

from .limits import Limits, explain, explain_start, over_memory


def describe_exit(returncode: int | None, with_template: bool = False) -> str:
    """How a process ended, from its return code ("was killed by signal 9 (SIGKILL)");
    ``with_template``: a worker that its template process took with it when that ended
    (which a bare SIGKILL would leave the user to take for an out-of-memory kill)."""
    if with_template:
        return "was ended with the device's template process, which ended (the device " \
               "starts a new one)"
    return "exited" if returncode is None else how_ended(returncode)


def explain_error(content: dict[str, Any], limits: Limits, asked: Asked, *,
                  oom_killed: bool = False) -> dict[str, Any]:
    """``content`` of an ``error`` or failed reply (with an ``ename``), with the limit that
    caused it added to its evalue and traceback; unchanged if no limit did. ``oom_killed``:
    the out-of-memory killer ended a process of the session during the request."""
    ename = content["ename"]
    if ename == "KernelDied" and oom_killed:
        # The worker saw only its kernel "killed by signal 9 (SIGKILL)", which reads as a
        # crash; the built-in session's worker, killed so, says MemoryLimitExceeded.
        return {**content, "ename": "MemoryLimitExceeded",
                "evalue": f"{over_memory(limits)}, so its kernel was stopped: "
                          f"{content.get('evalue', '')}"}
    if ename == "MemoryError" and "memory" in asked:
        why: str | None = (f"this cell asked for a memory limit of "
                           f"{show('memory', asked['memory'])} (limits.memory)")
    else:
        why = explain(limits, ename, str(content.get("evalue", "")))
    if why is None and ename == "BackendStartError":
        lines = content.get("traceback")
        lines = lines if isinstance(lines, list) else []
        why = explain_start(limits, "\n".join([str(content.get("evalue", "")),
                                               *map(str, lines)]))
    if why is None:
        return content
    content = {**content, "evalue": f"{content.get('evalue', '')} ({why})"}
    if isinstance(content.get("traceback"), list):
        content["traceback"] = [*content["traceback"], f"cellbus: {why}"]
    return content


def oom_note(limits: Limits, reply: dict[str, Any], oom_killed: bool) -> str | None:
    """A line for the stderr of a kernel's cell during which the out-of-memory killer
    ended a process of the session (``oom_killed``) that was not its kernel (a program it
    ran: bash said only "Killed"), else None. ``reply``: the cell's execute_reply."""
    if not oom_killed or reply.get("ename") == "MemoryLimitExceeded":
        return None
    return f"[cellbus: {over_memory(limits)}: the out-of-memory killer ended one of them]\n"


def asked_exit(returncode: int | None, asked: Asked) -> tuple[str, str] | None:
    """(ename, evalue) when a worker's exit shows the request's own CPU limit ended it."""
    if returncode == -signal.SIGXCPU and "cpu" in asked:
        return ("CPULimitExceeded", f"this cell used the {show('cpu', asked['cpu'])} "
                "of CPU time it asked for (limits.cpu) and was stopped; the session "
                "restarts fresh")
    return None

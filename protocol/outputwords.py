"""The words a user reads when a cell's output passes a limit, or was lost with a restored
store, in one place.

Two limits meet a cell that prints a lot, set on two nodes: the broker keeps at most
``--cell-output`` bytes of one run's output (and ``--user-output`` of a user's), and the
device lets one run print at most ``--max-output`` before it stops it. Both are said in the
cell's output, the first as a notice where the output was cut, the second as the run's
``OutputLimitExceeded`` error, so a user reads them one after the other: each names the same
kind of size (:func:`size`, in the same unit), what it counts (printed, kept), the option and
node that set it, what happened to the cell and what to do. Kept here, in ``protocol/``,
because two nodes must say them alike.
"""

from __future__ import annotations

from protocol.asked import show

#: The ename of the error that ends a run past ``--max-output``.
PRINTED_TOO_MUCH = "OutputLimitExceeded"
#: What the notices where output was cut and the broker's advise alike.
_TO_A_FILE = "to keep large output, write it to a file"


def size(n: float) -> str:
    """A limit in bytes as a user reads it: 64 KiB, 8 MiB, 1.5 GiB."""
    return show("memory", n)


def notice(text: str) -> str:
    """A note of cellbus's in a cell's output stream, set apart from what the code printed."""
    return f"\n[cellbus: {text}]\n"


def kept_cut(cap: int) -> str:
    """Where the broker cut a run at ``--cell-output`` ``cap``; the run was not stopped."""
    return (f"output truncated here: this run printed more than {size(cap)}, the most one "
            "run of a cell keeps (the broker's --cell-output). The cell was not stopped, but "
            f"nothing it printed after this is kept or shown; {_TO_A_FILE}.")


def user_cut(user: str, used: int, quota: int) -> str:
    """Where the broker cut a run as ``user``'s stored output (``used`` bytes) reached their
    ``--user-output`` ``quota``; the run was not stopped."""
    return (f"output truncated here: {user} has {size(used)} of output stored, the most one "
            f"user may keep (the broker's --user-output {size(quota)}). The cell was not "
            "stopped, but nothing it printed after this is kept or shown; to free space, "
            "delete worksheets you no longer need.")


def printed_cut(limit: int) -> str:
    """Where the device cut a run at ``--max-output`` ``limit`` (it stops the run next)."""
    return (f"output stopped here: this run printed more than {size(limit)}, the most one "
            "run of a cell may print (the device's --max-output).")


def printed_stop(limit: int) -> str:
    """The ``OutputLimitExceeded`` error's value: the run was stopped at ``limit``."""
    return (f"this run printed more than {size(limit)}, the most one run of a cell may print "
            "(the device's --max-output), so it was stopped; the session restarts fresh (its "
            f"variables are gone). Print less ({_TO_A_FILE}), then run it again.")


#: What a client is told (``lost``'s ``why``) when the store, restored from an older copy,
#: lacks output of its session that it had seen: the WebSocket's ``subscribe_reply`` and
#: ``output_lost``, a cell's ``/update`` and the worksheet's ``/session``, by the gateway
#: and the broker alike.
RESTORED = ("the store was restored from an older copy and lacks this session's output after "
            "its backup point up to the seq you had seen (\"through\"); what you show of it "
            "will not come back on a reload; new output follows")


def lost(session: str | None, through: int) -> dict[str, object]:
    """A client's ``lost`` field: it had seen ``session``'s output up to seq ``through``,
    which the store lacks from its backup point on (see :data:`RESTORED`)."""
    return {"session": session, "through": through, "why": RESTORED}

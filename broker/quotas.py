"""What one user may take: places on devices, and output kept in the store.

Without these, one user's 13 worksheets took every place on a device (the next user got 503)
and one print flood added 17.5 MB to the store, kept for as long as the cell keeps that run.
Each limit is a broker option (``0``: no limit), and each default is one a public service
with ``--auth token`` can live with:

``--user-sessions N`` (:data:`USER_SESSIONS`)
    Session workers one user holds at once. A request that needs one more (a worksheet's
    first run, or its first since its worker ended) is refused with 429 and words that say
    which quota and how to free a place. A worksheet whose worker is alive is never refused:
    a user at the cap goes on using the sessions they have.
``--cell-output BYTES`` (:data:`CELL_OUTPUT`)
    Output stored per run of a cell. The message that would pass it is replaced by a notice
    in the cell ("output truncated at N MiB ...") and the rest of that run's output is
    dropped, but never its reply or status messages, so the cell still ends ``done`` or
    ``error`` as its code did. The code keeps running (the device's ``--max-output`` is what
    stops a run).
``--user-output BYTES`` (:data:`USER_OUTPUT`)
    Output one user stores, counted by this broker from its start (a restarted broker
    counts afresh, and output that retention removes still counts until then). Past it, each
    run of the user stores the notice in place of its output.

The user is the one the gateway named (``metadata["cellbus"]["user"]``); only with
``--auth token`` is that someone who proved it. Requests per user are the gateway's ``--rate``
(a token bucket per user with ``--auth token``, per client address without).
"""

from __future__ import annotations

import argparse
import collections
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Final

from protocol import msgtypes as mt
from protocol.config import add_option
from protocol.wire import Message

from .placement import DeviceTable
from .store import Store

USER_SESSIONS: Final = 4
CELL_OUTPUT: Final = 8 * 2**20
USER_OUTPUT: Final = 256 * 2**20
#: Seconds a client refused for its session quota is told to wait (a worker idle for the
#: device's --idle-timeout, 60 s by default, ends and frees its place).
RETRY_AFTER: Final = 30
#: Runs whose stored output is counted at once; the oldest is forgotten past this (a run
#: whose end never arrives, say).
MAX_RUNS: Final = 10_000
#: Messages that carry a run's output; the rest (replies, status, interact and control
#: messages) are always stored, so a cell's state and end never depend on its output.
OUTPUT_TYPES: Final = frozenset({mt.STREAM, mt.DISPLAY_DATA, mt.EXECUTE_RESULT,
                                 "update_display_data"})

log = logging.getLogger("cellbus.broker")


@dataclass(frozen=True)
class QuotaConfig:
    """The limits above; 0 means none."""

    user_sessions: int = USER_SESSIONS
    cell_output: int = CELL_OUTPUT
    user_output: int = USER_OUTPUT

    def describe(self) -> str:
        def size(n: int) -> str:
            return f"{n / 2**20:g} MiB" if n else "no limit"
        return (f"sessions per user: {self.user_sessions or 'no limit'}; output per cell run: "
                f"{size(self.cell_output)}; output per user: {size(self.user_output)}")


def add_quota_options(p: argparse.ArgumentParser, *, by_auth: bool = False) -> None:
    """The broker's quota options. ``by_auth`` (``bin/cellbus up``): the per-user ones default
    to the broker's defaults with ``--auth token`` and to none without (one trusted user on
    loopback); :func:`quota_argv` then passes only what applies."""
    per_user = (" (default: with --auth token {}, else no limit)" if by_auth else "")
    add_option(p, "--user-sessions", type=int, metavar="N",
               default=None if by_auth else USER_SESSIONS,
               help="session workers one user may hold at once; beyond it a new worksheet "
                    "gets 429 (0: no limit)" + per_user.format(USER_SESSIONS))
    add_option(p, "--cell-output", type=int, default=CELL_OUTPUT, metavar="BYTES",
               help="output stored per run of a cell; the rest of the run's output is "
                    "dropped, with a notice in the cell (0: no limit)")
    add_option(p, "--user-output", type=int, metavar="BYTES",
               default=None if by_auth else USER_OUTPUT,
               help="output one user may store, counted since the broker started; past it "
                    "runs keep a notice instead of their output (0: no limit)"
                    + per_user.format(USER_OUTPUT))


def quota_config(args: argparse.Namespace) -> QuotaConfig:
    return QuotaConfig(user_sessions=max(0, args.user_sessions),
                       cell_output=max(0, args.cell_output), user_output=max(0, args.user_output))


def quota_argv(args: argparse.Namespace, *, token: bool) -> list[str]:
    """The broker's options for the quotas given to ``bin/cellbus up`` (see
    :func:`add_quota_options`); ``token``: its gateway runs with ``--auth token``."""
    argv = ["--cell-output", str(args.cell_output)]
    for flag, value in (("--user-sessions", args.user_sessions),
                        ("--user-output", args.user_output)):
        if value is not None or not token:
            argv += [flag, str(0 if value is None else value)]
    return argv


def message_size(msg: Message) -> int:
    """Bytes a message's content and buffers hold, about what storing it costs: strings and
    bytes by their length, any other value as 8. Iterative: content nests as deep as its
    sender likes."""
    size = sum(len(b) for b in msg.get("buffers") or ())
    stack: list[Any] = [msg.get("content")]
    while stack:
        value = stack.pop()
        if isinstance(value, (str, bytes)):
            size += len(value)
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
        else:
            size += 8
    return size


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB"


class Quotas:
    """The broker's keeper of the limits: :meth:`admit` from intake, :meth:`screen` on the
    way to the store."""

    def __init__(self, config: QuotaConfig, devices: DeviceTable, store: Store) -> None:
        self.config = config
        self.devices = devices
        self.store = store
        #: Who owns each session that holds a place (as far as known); see :meth:`admit`.
        self._owners: dict[str, str] = {}
        #: Output bytes stored by each run being counted (parent msg_id -> bytes); a run
        #: that was cut maps to -1.
        self._runs: collections.OrderedDict[str, int] = collections.OrderedDict()
        #: Output bytes each user stored since this broker started.
        self.user_bytes: dict[str, int] = {}
        log.info("broker quotas: %s", config.describe())

    # -- places --------------------------------------------------------------------------------

    async def admit(self, user: str, session_id: str) -> tuple[str, int] | None:
        """None if ``user`` may have ``session_id`` take one more place (then it counts as
        theirs), else the refusal's words and the seconds to wait. Sessions that hold a place
        already are always admitted."""
        limit = self.config.user_sessions
        if not limit or self.devices.holder(session_id) is not None:
            return None
        for s in self._held() - self._owners.keys():  # placed before this broker started
            record = await self.store.get_session(s)
            self._owners.setdefault(s, record.user if record is not None else "")
        held = self._held()  # again, after the reads: no await from here to the placement
        self._owners = {s: u for s, u in self._owners.items() if s in held}
        mine = sum(1 for s in held if self._owners.get(s) == user)
        if mine >= limit:
            return (f"quota: {user} already has {mine} running sessions, the most one user "
                    f"may have at once (the broker's --user-sessions {limit}); to free a "
                    "place, close a worksheet you are done with (restart it, or leave it "
                    "idle until its session ends) and run this cell again"), RETRY_AFTER
        self._owners[session_id] = user
        return None

    def _held(self) -> set[str]:
        """Sessions with a worker (or one starting) on a live device."""
        return {s for d in self.devices.live() for s in (*d.sessions, *d.placing)}

    # -- stored output -------------------------------------------------------------------------

    def screen(self, outputs: list[tuple[str, Message]]) -> list[tuple[str, Message]]:
        """``outputs`` as they may be stored: output past a run's or a user's limit is
        dropped, the first message dropped of each run becomes a notice that says so."""
        config = self.config
        if not (config.cell_output or config.user_output):
            return outputs
        kept: list[tuple[str, Message]] = []
        for session_id, msg in outputs:
            parent = msg["parent_header"].get("msg_id")
            if not isinstance(parent, str):
                kept.append((session_id, msg))
                continue
            if msg["msg_type"] not in OUTPUT_TYPES:
                if msg["msg_type"] == mt.STATUS and \
                        msg["content"].get("execution_state") == "idle":
                    self._runs.pop(parent, None)  # the run ended
                kept.append((session_id, msg))
                continue
            notice = self._count(parent, msg)
            if notice is None:
                kept.append((session_id, msg))
            elif notice:
                kept.append((session_id, self._notice(msg, notice)))
        return kept

    def _count(self, parent: str, msg: Message) -> str | None:
        """None to store ``msg``; else "" to drop it, or the notice that replaces it."""
        used = self._runs.pop(parent, 0)
        if used < 0:
            self._runs[parent] = used
            return ""
        facts = msg["metadata"].get("cellbus")
        user = facts.get("user") if isinstance(facts, dict) else None
        user = user if isinstance(user, str) else ""
        size = message_size(msg)
        cap, quota = self.config.cell_output, self.config.user_output
        user_used = self.user_bytes.get(user, 0)
        if cap and used + size > cap:
            why = (f"output truncated at {_mib(cap)}, the most one run of a cell keeps (the "
                   "broker's --cell-output); the cell keeps running, and what it prints from "
                   "here on is not kept")
        elif quota and user_used + size > quota:
            why = (f"output truncated: {user} has stored {_mib(user_used)} of output, the "
                   f"most one user may keep (the broker's --user-output {_mib(quota)}); the "
                   "cell keeps running, and what it prints from here on is not kept")
        else:
            self._runs[parent] = used + size
            while len(self._runs) > MAX_RUNS:
                self._runs.popitem(last=False)
            self.user_bytes[user] = user_used + size
            return None
        self._runs[parent] = -1
        return why

    @staticmethod
    def _notice(msg: Message, why: str) -> Message:
        """A stream message about the same run that says its output was cut (on the stream
        that was cut, so it ends that block; on stderr for other output)."""
        name = msg["content"].get("name") if msg["msg_type"] == mt.STREAM else None
        header = dict(msg["header"], msg_id=uuid.uuid4().hex, msg_type=mt.STREAM)
        return {"header": header, "msg_id": header["msg_id"], "msg_type": mt.STREAM,
                "parent_header": msg["parent_header"],
                "metadata": {"cellbus": dict(msg["metadata"].get("cellbus") or {})},
                "content": {"name": name if name in ("stdout", "stderr") else "stderr",
                            "text": f"\n[cellbus: {why}]\n"}}

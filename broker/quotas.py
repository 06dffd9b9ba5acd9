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
    in the cell ("output truncated here: this run printed more than N MiB ...",
    :mod:`protocol.outputwords`) and the rest of that run's output is
    dropped, but never its reply or status messages, so the cell still ends ``done`` or
    ``error`` as its code did. The code keeps running (the device's ``--max-output`` is what
    stops a run).
``--user-permalinks N`` (:data:`USER_PERMALINKS`)
    Permalinks one user may make (:mod:`broker.permalinks`); past it, 429. Kept for good,
    so this bounds what one user can add to the store by sharing links.
``--user-layouts N`` (:data:`USER_LAYOUTS`)
    Worksheets of one user with a layout in the store (:mod:`broker.layouts`; each at most
    1 MiB). Saving one for a new worksheet past it is refused with 429; replacing the layout
    of a worksheet that has one always works, and saving one with no cells deletes it,
    freeing a place. Layouts are kept for good (retention is for output), so this bounds
    what one user's pages can add to the store.
``--user-output BYTES`` (:data:`USER_OUTPUT`)
    Bytes one user keeps in the store, all of it: output, the code of their requests and its
    echo, interact requests, layouts, permalinks, delivery positions (:mod:`broker.budget`).
    Read from the store at the user's first request and every
    :data:`~broker.outputcap.RECOUNT` seconds after (retention removes output), plus what
    the broker stored for them since (a store that cannot tell: counted from the broker's
    start). Past it, each run of the user keeps the notice in place of its output, and a
    request that would store more is refused with 429 (:class:`~broker.budget.StoreBudget`).

The user is the one the gateway named (``metadata["cellbus"]["user"]``); only with
``--auth token`` is that someone who proved it. Requests per user are the gateway's ``--rate``
(a token bucket per user with ``--auth token``, per client address without).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import Final

from protocol.config import add_option
from protocol.wire import Message

from .budget import StoreBudget
from .outputcap import OutputCap, UserBytes
from .placement import DeviceTable
from .store import Store

USER_SESSIONS: Final = 4
CELL_OUTPUT: Final = 8 * 2**20
USER_OUTPUT: Final = 256 * 2**20
USER_PERMALINKS: Final = 1000
USER_LAYOUTS: Final = 200
#: Seconds a client refused for its session quota is told to wait before it asks again (a
#: worker idle for the device's --idle-timeout, 900 s by default, ends and frees its place).
RETRY_AFTER: Final = 30

log = logging.getLogger("cellbus.broker")


@dataclass(frozen=True)
class QuotaConfig:
    """The limits above; 0 means none."""

    user_sessions: int = USER_SESSIONS
    cell_output: int = CELL_OUTPUT
    user_output: int = USER_OUTPUT
    user_permalinks: int = USER_PERMALINKS
    user_layouts: int = USER_LAYOUTS

    def describe(self) -> str:
        def size(n: int) -> str:
            return f"{n / 2**20:g} MiB" if n else "no limit"
        return (f"sessions per user: {self.user_sessions or 'no limit'}; output per cell run: "
                f"{size(self.cell_output)}; output per user: {size(self.user_output)}; "
                f"worksheet layouts per user: {self.user_layouts or 'no limit'}")


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
               help="bytes one user may keep in the store (output, code, layouts, "
                    "permalinks); past it their runs keep a notice instead of their output "
                    "and requests that would store more get 429 (0: no limit)"
                    + per_user.format(USER_OUTPUT))
    add_option(p, "--user-permalinks", type=int, default=USER_PERMALINKS, metavar="N",
               help="permalinks one user a token names may make; past it, 429 (0: no limit)")
    add_option(p, "--user-layouts", type=int, default=USER_LAYOUTS, metavar="N",
               help="worksheets of one user a token names that may have a layout in the "
                    "store; saving one for a new worksheet past it gets 429, a layout with no "
                    "cells deletes one (0: no limit)")


def quota_config(args: argparse.Namespace) -> QuotaConfig:
    return QuotaConfig(user_sessions=max(0, args.user_sessions),
                       cell_output=max(0, args.cell_output), user_output=max(0, args.user_output),
                       user_permalinks=max(0, args.user_permalinks),
                       user_layouts=max(0, args.user_layouts))


def quota_argv(args: argparse.Namespace, *, token: bool) -> list[str]:
    """The broker's options for the quotas given to ``bin/cellbus up`` (see
    :func:`add_quota_options`); ``token``: its gateway runs with ``--auth token``."""
    argv = ["--cell-output", str(args.cell_output), "--user-permalinks",
            str(args.user_permalinks), "--user-layouts", str(args.user_layouts)]
    for flag, value in (("--user-sessions", args.user_sessions),
                        ("--user-output", args.user_output)):
        if value is not None or not token:
            argv += [flag, str(0 if value is None else value)]
    return argv


class Quotas:
    """The broker's keeper of the limits: :meth:`admit` from intake, :meth:`screen` on the
    way to the store."""

    def __init__(self, config: QuotaConfig, devices: DeviceTable, store: Store) -> None:
        self.config = config
        self.devices = devices
        self.store = store
        #: Who owns each session that holds a place (as far as known); see :meth:`admit`.
        self._owners: dict[str, str] = {}
        self.user_bytes = UserBytes(store)
        self.output = OutputCap(config.cell_output, config.user_output, self.user_bytes)
        #: The same bytes, for what a request asks the broker to store.
        self.budget = StoreBudget(config.user_output, self.user_bytes)
        log.info("broker quotas: %s", config.describe())

    # -- places --------------------------------------------------------------------------------

    async def admit(self, user: str, session_id: str, *, named: bool = True,
                    holder: str | None = None) -> tuple[str, int] | None:
        """None if ``user`` may have ``session_id`` take one more place (then it counts as
        theirs), else the refusal's words and the seconds to wait. Sessions that hold a place
        already are always admitted. Called for each execute request, before it is accepted:
        it also brings the count of the user's stored output up to date. Places are counted
        only for users a token ``named`` (see README, Quotas), or under ``holder`` (an
        anonymous visitor of a public gateway, by its address), when given."""
        if self.config.user_output:
            await self.user_bytes.refresh(user)  # before the run's output comes
        if holder is not None:
            user, named = holder, True
        limit = self.config.user_sessions if named else 0
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

    def screen(self, outputs: list[tuple[str, Message]]) -> list[tuple[str, Message]]:
        """``outputs`` as they may be stored (see :meth:`OutputCap.screen`)."""
        return self.output.screen(outputs)

    def forget_screened(self) -> None:
        """The batch last screened was not stored (see :meth:`OutputCap.forget_screened`)."""
        self.output.forget_screened()

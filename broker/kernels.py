"""Which kernel a worksheet's session runs: chosen by its first evaluate, kept after.

An evaluate may name a kernel (``content["kernel"]``, from the gateway's JSON or form field
``kernel``). For a worksheet with an open session the session's kernel stays (a session cannot
change language): an evaluate that names another one is a 409 (:class:`KernelConflict`) that
says so and how to change it (a restart of the session, then that kernel named), rather than
code of one language run in another, as Jupyter's execute never changes a kernel (its
Change Kernel starts a new one: PATCH /api/sessions, gateway/jupyter/sessions.py).
Otherwise the evaluate's kernel, else the one the worksheet's last session ran (remembered
while the broker runs), else :data:`DEFAULT_KERNEL`. The choice travels
with every request of the session in ``metadata["cellbus"]["kernel"]``, which is also how a
session's kernel is found again in the store after a restart.

A kernel no device the broker knows of offers is refused with a 400 that lists the ones
offered; with no device known yet, any well-formed name is accepted and waits for a device.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable
from typing import Any

from protocol.kernels import DEFAULT_KERNEL, kernel_of, valid

from .placement import DeviceTable
from .store import Request, SessionRecord

#: Worksheets whose last kernel is remembered.
MEMORY = 100_000


class KernelConflict(ValueError):
    """An evaluate named a kernel other than the one its worksheet's open session runs."""


class Kernels:
    """The kernel of each session and worksheet, and the check of a requested one."""

    def __init__(self, devices: DeviceTable,
                 requests: Callable[[str], Awaitable[list[Request]]]) -> None:
        self.devices = devices
        self.requests = requests
        self.sessions: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.worksheets: collections.OrderedDict[tuple[str, str], str] = (
            collections.OrderedDict())

    async def choose(self, asked: Any, session: SessionRecord | None, user: str,
                     worksheet: str) -> str:
        """The kernel of this evaluate; raises ``ValueError`` (a 400) for a bad or unknown
        kernel asked for a new session, :class:`KernelConflict` (a 409) for another kernel
        than the open session's."""
        if session is not None:
            kernel = self.sessions.get(session.session)
            if kernel is None:  # after a restart: its requests say
                stored = await self.requests(session.session)
                kernel = kernel_of(stored[-1].message["metadata"]) if stored else None
            if kernel is not None:
                self._remember(session.session, user, worksheet, kernel)
                if asked not in (None, "", kernel):
                    raise KernelConflict(
                        f"this worksheet's session runs the kernel {kernel!r}, not "
                        f"{str(asked)[:64]!r}: a session keeps its kernel. Restart the "
                        f"session (its variables go) and evaluate again to run "
                        f"{str(asked)[:64]!r} here, or use another worksheet")
                return kernel
        if asked is None or asked == "":
            kernel = self.worksheets.get((user, worksheet), DEFAULT_KERNEL)
        else:
            kernel = self.check(asked)
        if session is not None:
            self._remember(session.session, user, worksheet, kernel)
        return kernel

    def started(self, session_id: str, user: str, worksheet: str, kernel: str) -> None:
        """A new session of the worksheet was stored with ``kernel``."""
        self._remember(session_id, user, worksheet, kernel)

    def check(self, name: Any) -> str:
        known = self.devices.known_kernels()
        if not valid(name) or (known and name not in known):
            listed = ", ".join(sorted(known)) or DEFAULT_KERNEL
            raise ValueError(f"unknown kernel {str(name)[:64]!r}: the devices offer {listed}"
                             " (GET /kernels lists them)")
        return str(name)

    def listing(self) -> list[dict[str, str]]:
        """``GET /kernels``: every kernel offered by a device the broker knows."""
        return sorted(self.devices.known_kernels().values(), key=lambda k: k["name"])

    def _remember(self, session_id: str, user: str, worksheet: str, kernel: str) -> None:
        _keep(self.sessions, session_id, kernel)
        _keep(self.worksheets, (user, worksheet), kernel)


def _keep(table: collections.OrderedDict[Any, str], key: Any, kernel: str) -> None:
    """Remember ``key -> kernel``, forgetting the oldest beyond :data:`MEMORY`."""
    table[key] = kernel
    table.move_to_end(key)
    while len(table) > MEMORY:
        table.popitem(last=False)

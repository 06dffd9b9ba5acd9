"""A worksheet hears when its session ended, and why (issue 26, item 3).

A device reports ``session_closed`` (the worker sat idle past ``--idle-timeout``, was shut
down for a restart, hit a limit, died...) to the broker only; a device that goes silent
reports nothing, and the broker says ``device lost`` for its open sessions. The broker stores a
``session_closed`` note on the session's own feed, with the device's reason, and publishes
it like output: a page that is open says "gone: why" at once, and one that reloads later
reads it from the store with the rest of the worksheet. The note names no cell
(``cell_id`` is empty): it is the worksheet's, not a run's.
"""

from __future__ import annotations

import logging

from protocol import msgtypes as mt
from protocol.wire import Session

from .output import Outputs
from .store import Store, StoreError

#: The reason given for the sessions of a device the broker took for lost (silent past its
#: heartbeat expiry, or its key revoked): their workers are gone with it, or ended if it comes
#: back (broker/devices.py).
DEVICE_LOST = "device lost"


class SessionEnds:
    """Stores and publishes a session's end for its worksheet."""

    def __init__(self, *, wire: Session, store: Store, outputs: Outputs,
                 log: logging.Logger) -> None:
        self.wire, self.store, self.outputs, self.log = wire, store, outputs, log

    async def closed(self, session: str, reason: str) -> None:
        """Tell ``session``'s worksheet that its worker ended for ``reason``."""
        record = await self.store.get_session(session)
        if record is None:
            return  # not one of ours (a forged or long-forgotten name): nobody to tell
        note = self.wire.msg(mt.SESSION_CLOSED, {"session": session, "reason": reason},
                             metadata={"cellbus": {"session": session, "user": record.user,
                                                   "worksheet": record.worksheet,
                                                   "cell_id": ""}})
        try:
            await self.outputs.persist_and_publish([(session, note)])
        except StoreError as e:  # the session is gone anyway; only the note is lost
            self.log.warning("broker: could not store that session %s closed: %s", session, e)

"""How much of a client's comm messages one session's worker may hold queued.

Comm messages from a Jupyter client (a widget's every slider step) are not stored and not
counted by the gateway's ``--rate``, and the device queues them behind the session's running
cell, as a kernel's shell would. Nothing else bounded that queue: one user sending 1 MiB comm
messages at a kernel busy in ``time.sleep`` grew the device by 300 MB in 15 s, and would have
taken it down with every session on it. So a worker holds at most
:data:`COMM_BACKLOG_BYTES` of them (and :data:`COMM_BACKLOG_COUNT`); more are dropped, as a
kernel drops what its full socket cannot take, and the device logs it at most once per
:data:`LOG_INTERVAL` per session.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Final

from protocol import msgtypes as mt
from protocol.packing import packer
from protocol.wire import Message

log = logging.getLogger("cellbus.device")
_pack = packer(use_bin_type=True)  # one Packer per thread, not one per message
#: Bytes of comm messages (their packed content and their buffers) one worker may hold
#: behind its running cell.
COMM_BACKLOG_BYTES: Final = 8 * 2**20
#: Comm messages one worker may hold behind its running cell, whatever their size.
COMM_BACKLOG_COUNT: Final = 1000
#: Seconds between log lines about one session's dropped comm messages.
LOG_INTERVAL: Final = 10.0


class CommBacklog:
    """The comm messages a worker's queue holds, by size; :meth:`admit` says if one more fits."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        #: Sizes of the comm messages admitted, by msg_id (those no longer queued are
        #: forgotten at the next admit: the queue is emptied in several places).
        self.sizes: dict[str, int] = {}
        self.dropped = 0
        self._logged = -LOG_INTERVAL

    def admit(self, queue: Iterable[Message], request: Message) -> bool:
        """Whether ``request`` may join ``queue`` (always, unless it is a comm message that
        would take the queue's comm messages over the bounds)."""
        if request["msg_type"] not in mt.KERNEL_REQUEST_TYPES:
            return True
        queued = {r["msg_id"] for r in queue if r["msg_type"] in mt.KERNEL_REQUEST_TYPES}
        self.sizes = {k: v for k, v in self.sizes.items() if k in queued}
        size = len(_pack(request["content"])) + sum(len(b) for b in request.get("buffers") or ())
        if (len(self.sizes) < COMM_BACKLOG_COUNT
                and sum(self.sizes.values()) + size <= COMM_BACKLOG_BYTES):
            self.sizes[request["msg_id"]] = size
            return True
        self.dropped += 1
        now = time.monotonic()
        if now - self._logged >= LOG_INTERVAL:
            log.warning("device dropped %d comm message%s for session %s: over %d MiB (or %d) "
                        "of them were held behind its running cell", self.dropped,
                        "" if self.dropped == 1 else "s", self.session_id,
                        COMM_BACKLOG_BYTES // 2**20, COMM_BACKLOG_COUNT)
            self._logged, self.dropped = now, 0
        return False

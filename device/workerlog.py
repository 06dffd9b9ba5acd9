"""What the device logs about one worker: its rejected records, and what it says of itself.

Both are written by the worker's relay (:mod:`device.workers`) and both are bounded, since a
worker runs untrusted code that could otherwise flood the device's log: rejections are
counted (:attr:`WorkerLog.rejected`; the device reports the total in heartbeats) and logged,
the first at once, then at most one line per ``REJECT_LOG_INTERVAL`` with the count and the
latest reason; a worker's own lines (``worker_log``) are labelled with its pid and session,
quoted so they cannot pass for the device's, cut at ``WORKER_LOG_CHARS``, at most one per
``WORKER_LOG_INTERVAL``.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("cellbus.device")

#: Seconds between log lines about one worker's rejected records (the first is logged).
REJECT_LOG_INTERVAL = 10.0
#: Seconds between two lines a worker has the device log about itself, and their length.
WORKER_LOG_INTERVAL = 1.0
WORKER_LOG_CHARS = 2000


class WorkerLog:
    """The device's log lines about the worker ``pid`` of session ``session_id``."""

    def __init__(self, pid: int, session_id: str) -> None:
        self.pid, self.session_id = pid, session_id
        #: Records of this worker refused (forged, malformed, out of turn).
        self.rejected = 0
        self._why = ""
        self._logged_at = 0.0
        self._logged_count = 0
        #: When the worker's last worker_log line was logged, and how many were dropped since.
        self._said_at = -WORKER_LOG_INTERVAL
        self._unsaid = 0

    def reject(self, why: str) -> None:
        """Count a dropped record and log it: the first at once, then at most one line per
        REJECT_LOG_INTERVAL with the count and the latest reason."""
        self.rejected += 1
        self._why = why
        if self.rejected == 1 or time.monotonic() - self._logged_at >= REJECT_LOG_INTERVAL:
            self.log_rejections(final=False)

    def log_rejections(self, *, final: bool) -> None:
        """Log the rejections not logged yet (``final``: the worker is gone, say the total)."""
        unlogged = self.rejected - self._logged_count
        if not unlogged:
            return
        log.warning("device rejected %s from worker %d (session %s)%s: %s",
                    "a record" if unlogged == 1 else f"{unlogged} records", self.pid,
                    self.session_id, f", {self.rejected} in all" if final else "",
                    self._why)
        self._logged_at = time.monotonic()
        self._logged_count = self.rejected

    def said(self, text: str) -> None:
        """Log what the worker says about itself (a ``worker_log`` record's text)."""
        now = time.monotonic()
        if now - self._said_at < WORKER_LOG_INTERVAL:
            self._unsaid += 1
            return
        unsaid, self._unsaid, self._said_at = self._unsaid, 0, now
        log.warning("worker %d (session %s) says: %r%s", self.pid, self.session_id,
                    text[:WORKER_LOG_CHARS],
                    f" ({unsaid} earlier lines not logged)" if unsaid else "")

"""The broker's record of the clients its CURVE ports turned away, for ``bin/cellbus status``.

A stranger's key, a revoked one, a device's key on the gateway port (or a gateway's on the
device port), and handshakes that could not be decrypted (a wrong ``--broker-key``, a
replayed or tampered handshake, a man in the middle without the broker's secret key) were
each only a log line on the broker's host: ``status``, which an operator runs from anywhere,
said nothing of them. Each refusal is noted here by what it was (its port and who), counted,
with the time of the last one; the ZAP handler notes from its own thread, so a lock guards
the table. Only the :data:`KEPT` most recent kinds are kept, and those older than
:data:`WINDOW` seconds are not reported.
"""

from __future__ import annotations

import threading
import time
from typing import Any

#: Kinds of refusal kept at most (the oldest forgotten first).
KEPT = 50
#: Seconds a refusal stays in ``status`` after its last occurrence.
WINDOW = 3600.0
#: Seconds before the same refusal is logged again while it goes on (a client retries its
#: handshake every ~100 ms).
REPEAT = 60.0


class Every:
    """Says whether a thing is due to be logged again: once per ``seconds`` each."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last: dict[object, float] = {}
        self._lock = threading.Lock()

    def due(self, what: object) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(what, -self.seconds) < self.seconds:
                return False
            self._last[what] = now
            while len(self._last) > KEPT:
                del self._last[next(iter(self._last))]
            return True


class Refusals:
    """Refusals by (port, who): how many, and when the last one was (monotonic)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], tuple[int, float]] = {}

    def note(self, port: str, who: str) -> None:
        """One more refusal on the ``port`` (device, gateway) of the client ``who`` says."""
        with self._lock:
            count, _ = self._seen.pop((port, who), (0, 0.0))
            self._seen[(port, who)] = (count + 1, time.monotonic())  # now the newest
            while len(self._seen) > KEPT:
                del self._seen[next(iter(self._seen))]

    def recent(self) -> list[dict[str, Any]]:
        """The refusals of the last :data:`WINDOW` seconds, newest first, as ``status``
        carries them: ``{"port", "who", "count", "ago"}`` (seconds since the last)."""
        now = time.monotonic()
        with self._lock:
            items = list(self._seen.items())
        return [{"port": port, "who": who, "count": count, "ago": round(now - last, 1)}
                for (port, who), (count, last) in reversed(items) if now - last <= WINDOW]

"""The prompt a session's worker waits on, its answer and its timeout, as the device sees it.

A worker that runs ``input()`` sends an ``input_request`` (relayed upstream like any output)
and blocks until an ``input_reply`` comes back over its link. The device passes an answer on
only while such a prompt is pending, once: an answer for a worker that asked nothing (late,
repeated, or meant for a cell that ended) is dropped. A prompt left unanswered for
``--input-timeout`` seconds is ended by the device itself with an ``input_reply`` whose value
is end of file (``"\\x04"``, as ipykernel reads it) and whose ``error`` says why; the built-in
session raises ``InputTimeout`` with that text. Time spent waiting for an answer is not
execution time: ``--exec-timeout`` counts without it (:meth:`Prompt.waited`). The answer's
value is never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from protocol import msgtypes as mt

log = logging.getLogger("cellbus.device")

#: Seconds a prompt waits for its answer by default (--input-timeout).
INPUT_TIMEOUT = 300.0

Send = Callable[[dict[str, Any]], Awaitable[None]]


class Prompt:
    """Whether one worker waits for an answer, and the timer that ends a forgotten wait."""

    def __init__(self, send: Send, timeout: float, label: str) -> None:
        self._send, self.timeout, self.label = send, timeout, label
        self.waiting = False
        self._since = 0.0  # when the pending prompt was sent (monotonic)
        self._waited = 0.0  # seconds the running request waited on earlier prompts
        self._timer: asyncio.TimerHandle | None = None
        self._expiry: asyncio.Task[None] | None = None

    def opened(self) -> None:
        """The worker sent an ``input_request``: it waits now (a second one restarts the clock)."""
        self.closed()
        self.waiting, self._since = True, time.monotonic()
        if self.timeout > 0:
            self._timer = asyncio.get_running_loop().call_later(self.timeout, self._expire)

    def closed(self) -> None:
        """The prompt is answered, or its request ended (an interrupt, the worker died)."""
        if self.waiting:
            self._waited += time.monotonic() - self._since
        self.waiting = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def started(self) -> None:
        """A new request runs: it has waited on no prompt yet."""
        self.closed()
        self._waited = 0.0

    def waited(self) -> float:
        """Seconds the running request has spent waiting for answers, so far."""
        return self._waited + (time.monotonic() - self._since if self.waiting else 0.0)

    async def answer(self, value: str) -> bool:
        """Pass ``value`` to the waiting worker; False (and nothing sent) if none waits."""
        if not self.waiting:
            return False
        self.closed()
        await self._reply({"value": value})
        return True

    def _expire(self) -> None:
        self._timer = None
        if self.waiting:
            self.closed()
            log.info("device: %s left a prompt unanswered for %g s (--input-timeout); ending it",
                     self.label, self.timeout)
            self._expiry = asyncio.ensure_future(self._reply({
                "value": mt.INPUT_EOF,
                "error": f"no answer came within {self.timeout:g} s (the device's "
                         "--input-timeout); run the cell again to be asked again"}))

    async def _reply(self, content: dict[str, Any]) -> None:
        try:
            await self._send({"msg_type": mt.INPUT_REPLY, "msg_id": uuid.uuid4().hex,
                              "content": content})
        except (ConnectionError, OSError):
            pass  # the worker is gone; its request fails as any whose worker died

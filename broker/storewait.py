"""A broker starting while its store's server does not answer: it says so, and tries again.

A broker is a long-running service, often started with its database (one boot, one compose
file): a MongoDB that answers a few seconds later must not cost the operator a restart, and
the broker must not wait silently either (pymongo alone waits 30 s without a word, then the
broker exited). So each attempt is bounded (:data:`~broker.store.CONNECT_TIMEOUT`), each
failed one is a WARNING naming the server and what to check, and ``--store-wait`` says how
long to go on (default forever; ``0``: one attempt, for ``bin/cellbus up``, whose user waits
at a terminal). A store that refuses (bad credentials, a missing folder) is not retried, and
SIGTERM stops the waiting at once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Final

from protocol.numbers import seconds, times

from .store import Store, StoreUnreachable

#: Seconds between one failed attempt's end and the next attempt.
RETRY_EVERY: Final = 2.0
#: ``--store-wait``'s default: try until the store answers or the broker is stopped.
FOREVER: Final = "forever"


def store_wait(text: str) -> float:
    """``--store-wait``: seconds, 0 or more, or ``forever`` (``math.inf``)."""
    if str(text).strip().lower() == FOREVER:
        return math.inf
    try:
        return seconds(text)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"{e} (or {FOREVER})") from None


def _spent(began: float) -> str:
    return f"{time.monotonic() - began:.0f} s"


async def open_when_reachable(store: Store, log: logging.Logger,
                              stopped: Callable[[], Awaitable[None]], *, wait: float,
                              every: float = RETRY_EVERY) -> bool:
    """Open ``store``, trying again every ``every`` seconds for up to ``wait`` seconds while
    its server does not answer. False when ``stopped()`` finished first (SIGTERM): the
    store is then closed.

    Raises :class:`StoreUnreachable` once ``wait`` has passed, and any other
    :class:`~broker.store.StoreError` of ``open()`` at once.
    """
    began, attempt = time.monotonic(), 0
    stop = asyncio.ensure_future(stopped())
    try:
        while True:
            attempt += 1
            opening = asyncio.ensure_future(store.open())
            await asyncio.wait([opening, stop], return_when=asyncio.FIRST_COMPLETED)
            if not opening.done():  # stopped: open() closes what it had made
                opening.cancel()
                await asyncio.gather(opening, return_exceptions=True)
                return False
            try:
                opening.result()
            except StoreUnreachable as e:
                left = wait - (time.monotonic() - began)
                if left <= 0:
                    raise StoreUnreachable(f"{e} (tried {times(attempt)}; gave up after "
                                           f"{wait:g} s, --store-wait)") from e
                if attempt == 1:
                    until = ("until it answers (--store-wait forever)" if math.isinf(wait)
                             else f"for up to {wait:g} s (--store-wait)")
                    log.warning("broker store: cannot reach it: %s; trying again every %g s "
                                "%s", e, every, until)
                else:
                    log.warning("broker store: still cannot reach it (attempt %d, %s so far): "
                                "%s", attempt, _spent(began), e)
                await asyncio.wait([stop], timeout=min(every, left))
                if stop.done():
                    return False
                continue
            if attempt > 1:
                log.info("broker store: reached it at attempt %d, after %s", attempt,
                         _spent(began))
            return True
    finally:
        stop.cancel()

"""The gateways the broker hears: each says who it is every :data:`INTERVAL` seconds
(``gateway_heartbeat``, the gateway's half of the ZeroMQ Guide's Paranoid Pirate: the broker
answers nothing, its replies to requests are sign enough for a gateway), so ``cellbus
status`` can say which gateways are up. A gateway is a client of the broker; it is listed,
not managed: one silent past :data:`EXPIRY` is "not alive", and forgotten after
:data:`FORGET`. A broker that has just started has heard no gateway yet, whether there are
some or not: for its first :data:`EXPIRY` seconds, none heard is "not known yet" (``None``),
not "none". The table holds at most :data:`MOST` gateways, the longest silent going first.
The broker's log says when a gateway is first heard, when it falls silent (once) and when it
is heard again, as it does for devices: an operator reading it after an outage sees the
gateway that went, not only ``cellbus status`` at that moment. A gateway stopped gracefully
says so last (``"stopped": true``): it is listed stopped at once, and its log line is that,
not a warning 6 s later that it fell silent "(stopped, frozen, or its link down?)", which
every ``bin/cellbus up`` stopped with Ctrl-C wrote while its devices drained.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from protocol.heartbeat import GATEWAY_INTERVAL as INTERVAL
from protocol.recent import forget_oldest

#: Seconds of silence after which a gateway is listed as not alive.
EXPIRY = 3 * INTERVAL
#: Seconds of silence after which it is no longer listed.
FORGET = 3600.0
#: Gateways listed at most.
MOST = 256
#: Characters of a gateway's name kept.
NAME_LENGTH = 200


@dataclass(slots=True)
class _Heard:
    version: str
    at: float
    feed: bool | None  # its link to the output feed is up; None: a gateway that says not
    stopped: bool = False  # its last word was that it stopped


class Gateways:
    """The gateways heard lately, by name: a gateway that connects again (a new routing id on
    the broker's port) or restarts on its port is the same row."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._heard: OrderedDict[str, _Heard] = OrderedDict()
        self._started = time.monotonic()
        self._silent: set[str] = set()  # said silent in the log, not heard since

    def heard(self, content: dict[str, Any]) -> None:
        """A heartbeat: ``{"gateway": its name (host:port), "version", "feed"}``, and
        ``"stopped": true`` in the last one of a gateway stopping gracefully."""
        name, version, feed = (content.get(k) for k in ("gateway", "version", "feed"))
        name = name[:NAME_LENGTH] if isinstance(name, str) and name else "(unnamed)"
        stopped = content.get("stopped") is True
        was = self._heard.get(name)
        if stopped:
            self._silent.add(name)  # gone, and said so: no warning that it fell silent
            self.log.info("broker: gateway %s stopped", name)
        elif was is not None and was.stopped or name not in self._heard:
            self._silent.discard(name)
            self.log.info("broker: gateway %s is up", name)
        elif name in self._silent:
            self._silent.discard(name)
            self.log.info("broker: gateway %s is heard again", name)
        self._heard[name] = _Heard(version[:NAME_LENGTH] if isinstance(version, str) else "",
                                   time.monotonic(), feed if isinstance(feed, bool) else None,
                                   stopped)
        self._heard.move_to_end(name)  # the newest last, for forget_oldest
        forget_oldest(self._heard, MOST)
        if len(self._silent) > len(self._heard):
            self._silent.intersection_update(self._heard)

    async def watch(self) -> None:
        """Say once in the log when a gateway falls silent past :data:`EXPIRY`."""
        while True:
            await asyncio.sleep(INTERVAL)
            self.sweep()

    def sweep(self) -> None:
        """Log each gateway newly silent past :data:`EXPIRY` (see :meth:`watch`)."""
        now = time.monotonic()
        for name, g in self._heard.items():
            if name not in self._silent and now - g.at >= EXPIRY:
                self._silent.add(name)
                self.log.warning("broker: gateway %s silent for %.0f s (stopped, frozen, or "
                                 "its link down?); cellbus status lists it not alive", name,
                                 now - g.at)

    def listing(self) -> list[dict[str, Any]] | None:
        """``[{gateway, alive, silent, version, feed, stopped}]`` by name, the forgotten
        dropped; None while none was heard in the broker's first :data:`EXPIRY` seconds.
        ``feed``: whether its link to the output feed was up at its last word (None: it does
        not say); ``stopped``: its last word was that it stopped (it is not alive)."""
        now = time.monotonic()
        while self._heard and now - next(iter(self._heard.values())).at >= FORGET:
            self._silent.discard(self._heard.popitem(last=False)[0])
        if not self._heard and now - self._started < EXPIRY:
            return None
        return [{"gateway": name, "alive": not g.stopped and now - g.at < EXPIRY,
                 "silent": round(now - g.at, 1), "version": g.version, "feed": g.feed,
                 "stopped": g.stopped}
                for name, g in sorted(self._heard.items())]

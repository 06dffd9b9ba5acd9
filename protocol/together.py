"""One line for what several links of a node say of one cause (protocol/linkwatch.py)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .linkwatch import LinkWatch


#: Seconds a node's links wait for each other's news of one cause before it is said.
GATHER = 0.25


class Together:
    """What several links of one node say of one cause at once, said in one line.

    A broker that stops drops every link a node has to it (a gateway has three: requests,
    the output feed, big reads): each link's "lost its link" and, 5 s later, "no link ...
    after 5 s" made four to six lines of one cause. A link's news waits :data:`GATHER`
    seconds for the others' of the same words; then one line names every endpoint, the
    first link's first: "... at EP1 (and at EP2, EP3) ...". News a link has waiting is said
    before its next (:meth:`flush`), so the lines keep their order.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, tuple[asyncio.TimerHandle, list[LinkWatch], int, bool]] = {}

    def say(self, watch: LinkWatch, level: int, words: str, *, every: bool = False) -> None:
        """Say ``words`` (with ``{at}`` where the endpoints go) for ``watch``'s link, with
        the other links' that say the same within :data:`GATHER` seconds; once per
        :data:`~protocol.linkwatch.REPEAT` seconds, or ``every`` time (a loss is news each
        time)."""
        self.flush(watch)
        if words in self._waiting:
            self._waiting[words][1].append(watch)
            return
        timer = asyncio.get_running_loop().call_later(GATHER, self._said, words)
        self._waiting[words] = (timer, [watch], level, every)

    def flush(self, watch: LinkWatch) -> None:
        """Say now what ``watch``'s link has waiting, before it says anything else."""
        for words in [w for w, (_, watches, _, _) in self._waiting.items() if watch in watches]:
            self._waiting[words][0].cancel()
            self._said(words)

    def _said(self, words: str) -> None:
        _, watches, level, every = self._waiting.pop(words)
        watches.sort(key=lambda w: w.rank)
        others = ", ".join(dict.fromkeys(w.endpoint for w in watches[1:]
                                         if w.endpoint != watches[0].endpoint))
        line = words.replace("{at}", watches[0].endpoint + (f" (and at {others})" if others
                                                            else ""))
        if every:
            watches[0].log.log(level, "%s", line)
        else:
            watches[0].say(level, line)

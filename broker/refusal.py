"""What a gateway request may be refused with, and the cell address every request names.

Kept apart from :mod:`broker.intake` so that the modules intake calls (control, interacts)
can refuse a request without importing intake: the broker's modules import in layers.
"""

from __future__ import annotations

from typing import Any

from protocol.address import is_name
from protocol.wire import Message

#: Seconds a client is told to wait when the store cannot write (507 or 503).
STORE_RETRY_AFTER = 5

Address = tuple[str, str, str]
#: What a request handler returns: the reply's content and its buffers.
Reply = tuple[dict[str, Any], list[bytes]]


class Refused(Exception):
    """A gateway request the broker will not act on; becomes an ``ok: false`` reply."""

    def __init__(self, http_status: int, error: str, *, retry_after: int | None = None) -> None:
        super().__init__(error)
        self.http_status = http_status
        self.retry_after = retry_after


def cell_address(msg: Message) -> Address:
    facts = msg["metadata"].get("cellbus")
    facts = facts if isinstance(facts, dict) else {}
    parts = tuple(facts.get(k) for k in ("user", "worksheet", "cell_id"))
    if not all(is_name(p) for p in parts):
        raise Refused(400, "a request must name user, worksheet and cell_id")
    return parts  # type: ignore[return-value]

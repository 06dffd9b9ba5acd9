"""A device heard again while the broker's DeviceWatch.lost() still reads the store, in process.

lost() takes the sessions the device's last report listed at once, and the ones the store
alone places there (placed since that report: expired() forgets placements) only once it has
read them. A device that comes back in between is told to end the workers of the first kind
(DeviceWatch.came_back); these tests check that it is told of the second kind too, and that a
request of such a session handed to it meanwhile (to the old worker, which the note then
ends, queue and all) is handed out again behind the note. The parts are those of
tests/test_broker_inprocess.py (real SQLite, real sockets); tests/test_dispatch_order.py has
the same window for the sessions a report listed.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest

from broker.store import NEEDS_WORK, OPEN, SessionRecord
from protocol import msgtypes as mt
from test_broker_inprocess import Parts, parts  # noqa: F401 (a fixture)
from test_dispatch_order import SlowSessions, accept, lose_d1, watch

pytestmark = pytest.mark.timeout(30)


async def test_a_session_only_the_store_placed_on_a_lost_device_is_ended_when_it_comes_back(
        parts: Parts) -> None:
    """d1 is lost with s1 in its last report and s2 placed there since (in the store only);
    it is heard again, listing both, while lost() reads the store, and s2's next request is
    handed to it then. Before, only s1's worker was told to end: s2's old worker ran on with
    the variables its worksheet was told are gone (session_closed, device lost)."""
    for session in ("s1", "s2"):
        await parts.store.put_session(SessionRecord(
            session=session, user="u", worksheet=f"w-{session}", device="d1", state=OPEN,
            created=1.0, last_activity=1.0))
    lose_d1(parts, {"capacity": 4, "load": 1, "sessions": ["s1"]})
    slow = SlowSessions(parts)
    closed: list[str] = []

    async def told(session: str, why: str) -> None:
        closed.append(session)

    lost = watch(parts)
    lost.ends = cast(Any, SimpleNamespace(closed=told))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parts.store, "sessions", slow)
        losing = asyncio.create_task(lost.lost("d1"))
        await asyncio.wait_for(slow.reading.wait(), 5)
        parts.devices.heard("d1", b"d1", {"capacity": 4, "load": 2, "sessions": ["s1", "s2"]})
        lost.came_back("d1", {"sessions": ["s1", "s2"]})
        early = await accept(parts, "s2", "d1")
        assert early.device == "d1"  # its old worker is still listed there
        slow.go_on.set()
        await asyncio.wait_for(losing, 5)
    assert sorted(closed) == ["s1", "s2"]
    got = [(m["msg_type"], m["content"].get("session", m["msg_id"]))
           for m in await parts.received(4)]
    assert got == [(mt.SESSION_CLOSED, "s1"), (mt.EXECUTE_REQUEST, early.msg_id),
                   (mt.SESSION_CLOSED, "s2"), (mt.EXECUTE_REQUEST, early.msg_id)]
    await parts.nothing_more()
    assert early.msg_id in lost.revoked  # what the old worker says of its copy is dropped
    assert [r.msg_id for r in await parts.store.requests(NEEDS_WORK)] == [early.msg_id]
    assert "s2" not in parts.devices.devices["d1"].sessions

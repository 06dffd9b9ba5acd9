"""One user's share of a device's outbox (device/outbox.py, --user-outbox), over a real
device process and a stand-in broker that stores nothing (it never acknowledges a record).

The outbox is one queue for every session; a full one stopped every worker's writes, so one
user flooding from four sessions held another user's output back until the broker caught up:
another user's first cell took seconds (bench/fair_share.py measures that through a chain).
"""

from __future__ import annotations

import asyncio

from device.outbox import Outbox
from harness import BusClient, until
from protocol.wire import Message, Session

#: 4 KiB lines without end, each flushed: a record each.
FLOOD = ("import sys\nwhile True:\n    sys.stdout.write('x' * 4095 + '\\n')\n"
         "    sys.stdout.flush()\n")
OUTBOX = 2**20
SHARE = OUTBOX // 4  # the default --user-outbox is at most a quarter of --outbox-bytes


def stdout_bytes(client: BusClient, user: str) -> int:
    """Bytes of stdout text the stand-in broker has received from ``user``'s sessions."""
    return sum(len(m["content"].get("text", "")) for _, m in client.inbox
               if m["msg_type"] == "stream" and m["metadata"]["cellbus"].get("user") == user)


def of_user(msg: Message, user: str) -> bool:
    return msg["metadata"].get("cellbus", {}).get("user") == user


def test_a_user_flooding_from_four_sessions_leaves_the_outbox_to_another_user(
        device_with_client) -> None:
    """Tests that while ann's four sessions print without end and the broker stores nothing,
    ann's sessions stop at her share of the outbox (a quarter of 1 MiB), the device says so
    in its log, and bob's first cell in a new session still gets its whole answer to the
    broker. Before, ann's output filled the whole outbox and bob's worker waited for room
    with hers: bob's cell got no output at all until the broker acknowledged ann's."""
    client, device = device_with_client("--outbox-bytes", str(OUTBOX), "--drain-timeout", "0")
    for n in range(4):
        client.execute(FLOOD, f"ann-{n}", user="ann", worksheet=f"flood{n}", cell_id="1")
    until(lambda: client.recv(0.2) is not None and stdout_bytes(client, "ann") >= SHARE // 2,
          "ann's floods under way", 30)
    bob = client.execute("print('bob here')", "bob-1", user="bob", worksheet="ws", cell_id="1")
    answer = client.replies_to(bob, timeout=30)
    assert [m["content"]["text"] for m in answer if m["msg_type"] == "stream"] == ["bob here\n"]
    assert answer[-1]["msg_type"] == "status" and all(of_user(m, "bob") for m in answer)
    # Nothing of ann's was acknowledged, so all she sent is still held: at most her share,
    # and the one 4 KiB record each of her four workers read before it was reached.
    assert SHARE // 2 <= stdout_bytes(client, "ann") <= SHARE + 4 * 4096
    device.wait_for_log(r"device: ann's sessions hold [\d.]+ MiB of output the broker has not "
                        r"stored yet, the most one user may hold \(--user-outbox 0.25 MiB\)")


def of(session: Session, user: str, size: int = 300) -> Message:
    msg = session.msg("stream", {"name": "stdout", "text": "y" * size},
                      parent={"msg_id": f"{user}-p", "msg_type": "execute_request"})
    msg["metadata"]["cellbus"] = {"user": user}
    return msg


async def test_a_user_waits_at_its_share_and_only_it() -> None:
    """Tests the share in the outbox itself (no broker: nothing is acknowledged). ann at her
    --user-outbox waits and bob does not; with the outbox full of four users' records, a
    user holding less than an even share still goes on, one holding more waits; an ack of
    ann's records lets both go on. Before, only the whole outbox's bytes counted."""
    session = Session(b"k" * 32)
    box = Outbox(lambda frames: asyncio.sleep(0), session.serialize, capacity=360_000,
                 user_capacity=100_000)
    while box.held.get("ann", 0) < 100_000:
        box.put(of(session, "ann"))
    ann = asyncio.create_task(box.room("ann"))
    await asyncio.wait_for(box.room("bob"), 1)  # bob holds nothing: no wait
    await asyncio.sleep(0.01)
    assert not ann.done() and box.user_waits == 1
    for user in ("bob", "cy", "dee"):
        while box.held.get(user, 0) < 90_000:
            box.put(of(session, user))
    box.put(of(session, "eve"))
    assert box.bytes >= box.capacity and len(box.held) == 5
    await asyncio.wait_for(box.room("eve"), 1)  # 1 record, far less than 360 kB / 5 users
    bob = asyncio.create_task(box.room("bob"))  # 90 kB, past an even share of 72 kB
    await asyncio.sleep(0.01)
    assert not bob.done()
    first_of_others = next(r.n for r in box._records if r.user != "ann")
    box.ack(box.epoch, first_of_others - 1)  # every record of ann's stored
    await asyncio.wait_for(ann, 1)
    await asyncio.wait_for(bob, 1)  # the outbox is no longer full: bob is under his share
    assert "ann" not in box.held and box.bytes < box.capacity and box.user_waits == 2

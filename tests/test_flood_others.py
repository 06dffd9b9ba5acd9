"""One user's output flood against another user's cells, over a real chain (broker, device,
gateway): the broker folds each cell's output into the view ``/update`` answers from
(protocol/fold.py) on its one loop, so what a flood costs there is what everyone else waits.
"""

from __future__ import annotations

import time

from harness import Chain, until

#: 8 MiB of stdout (the broker's default --cell-output) in 4 KiB writes, each flushed: a
#: message each.
FLOOD = ("import sys\nfor i in range(2100):\n    sys.stdout.write('x' * 4095 + '\\n')\n"
         "    sys.stdout.flush()\n")


def test_a_flood_of_small_writes_keeps_another_users_cell_quick(chain: Chain) -> None:
    """Tests that while ann's two cells print 8 MiB each in 4 KiB messages, bob's cell is
    answered within 3 s (the floods' own end, cut at --cell-output: tests/test_quotas.py).
    Before, the fold copied a cell's whole text so far for each message (8 GiB a flood);
    the broker's loop was held for 10 s and more, and bob's evaluate got 503 ("the broker
    did not answer within 10 s")."""
    chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    assert chain.evaluate("bob/ws/1", "print('warm')")[0] == 202
    assert chain.wait_done("bob/ws/1")["status"] == "done"
    for n in (1, 2):
        assert chain.evaluate(f"ann/flood{n}/1", FLOOD)[0] == 202
    until(lambda: chain.update("ann/flood2/1")[1].get("output"), "ann's second flood", 30)
    started = time.monotonic()
    status, answer = chain.evaluate("bob/ws/2", "print('still quick')")
    assert status == 202, answer
    doc = chain.wait_done("bob/ws/2", timeout=60)
    elapsed = time.monotonic() - started
    assert [b["content"] for b in doc["output"].values()] == ["still quick\n"]
    assert elapsed < 3.0, f"bob's cell took {elapsed:.1f} s"

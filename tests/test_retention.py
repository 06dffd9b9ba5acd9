"""Retention through the whole chain: a finished worksheet's log is compacted by the broker,
and what clients read of its cells is what they read before."""

from __future__ import annotations

import signal

from harness import Chain, replayed_seqs

STREAM = ("import time\nfor i in range(30):\n    print('run {run} line', i, flush=True)\n"
          "    time.sleep(0.01)\ndisplay('shown')\n6 * 7")


def test_compacted_worksheet_reads_the_same_and_goes_on(chain: Chain) -> None:
    """Tests that once the broker compacted a finished worksheet, /update?since=0 of each cell
    gives the same document (also from a restarted broker, folding it from the store), the
    log is smaller with seqs still rising, and the worksheet's next cell goes on from its
    last seq."""
    chain.start_broker("--retention", "2s")
    chain.start_gateway()
    chain.start_device(name="dev")
    for run in range(3):
        chain.evaluate("u/ws/1", STREAM.format(run=run))
        assert chain.wait_done("u/ws/1")["status"] == "done"
    chain.evaluate("u/ws/2", "print('before the error')\n1 / 0")
    assert chain.wait_done("u/ws/2")["status"] == "error"
    before = {cell: chain.update(cell)[1] for cell in ("u/ws/1", "u/ws/2")}
    seqs_before = replayed_seqs(chain, "u", "ws")
    assert chain.broker is not None
    chain.broker.wait_for_log(r"broker retention: compacted 1 sessions finished over 2s ago",
                              timeout=30)
    assert chain.broker.stop(signal.SIGTERM) == 0
    chain.start_broker("--retention", "2s")  # views are folded from the store again

    for cell, doc in before.items():
        assert chain.update(cell)[1] == doc
    assert "run 2 line 29" in before["u/ws/1"]["output"]["stdout_0"]["content"]
    seqs_after = replayed_seqs(chain, "u", "ws")
    assert seqs_after == sorted(set(seqs_after)) and len(seqs_after) < len(seqs_before) / 3
    assert set(seqs_after) <= set(seqs_before)
    chain.evaluate("u/ws/3", "print('later')")
    later = chain.wait_done("u/ws/3")
    assert later["output"]["stdout_0"]["content"] == "later\n"
    assert later["output"]["stdout_0"]["seq"] > max(seqs_before)

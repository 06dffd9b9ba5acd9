"""Each worksheet's cells run once and in the order accepted, on a loaded real chain.

Several worksheets queue cells at once (none waits for the one before to finish) while a
second device joins (its reconciliation runs a dispatch pass among the requests arriving):
every cell counts its worksheet's runs, so a cell run out of order, twice or not at all shows
as a wrong count (broker/dispatch.py's order rule).
"""

from __future__ import annotations

import threading

from harness import Chain

WORKSHEETS = 4
DEPTH = 4
COUNT = "n = globals().get('n', 0) + 1\nprint(n)"


def test_cells_of_many_worksheets_run_once_in_order_while_a_device_joins(chain: Chain) -> None:
    """Tests that 4 worksheets x 4 cells, sent at once while a device joins, each print
    1..4 in cell order."""
    chain.start_broker()
    chain.start_gateway()
    chain.start_device("--max-sessions", str(WORKSHEETS), name="first")
    refused: list[tuple[str, int]] = []
    go = threading.Event()

    def queue(worksheet: int) -> None:
        go.wait(10)
        for cell in range(1, DEPTH + 1):
            status, _ = chain.evaluate(f"u/w{worksheet}/{cell}", COUNT)
            if status != 202:
                refused.append((f"w{worksheet}/{cell}", status))

    senders = [threading.Thread(target=queue, args=(w,)) for w in range(WORKSHEETS)]
    for sender in senders:
        sender.start()
    go.set()
    chain.start_device("--max-sessions", str(WORKSHEETS), name="second")
    for sender in senders:
        sender.join(30)
    assert refused == []
    for worksheet in range(WORKSHEETS):
        for cell in range(1, DEPTH + 1):
            doc = chain.wait_done(f"u/w{worksheet}/{cell}")
            assert doc["status"] == "done", (worksheet, cell, doc)
            assert doc["output"]["stdout_0"]["content"] == f"{cell}\n", (worksheet, cell)

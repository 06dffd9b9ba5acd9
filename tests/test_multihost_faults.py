"""Faults across hosts that tests/test_multihost.py leaves out (tests/netbed.py): the
gateway's host cut off past the heartbeat while a cell prints, and loss in one direction
only. Each cell's output arrives exactly once and every node comes back by itself."""

from __future__ import annotations

import time

from netbed import NetChain, wait_until
from protocol.node import ZMTP_HEARTBEAT
from test_multihost import CELLS, bed, output_text, run, start

__all__ = ["bed"]  # the fixture

#: Seconds the gateway's host stays cut off: past the ZMTP heartbeat timeout, so its TCP
#: connections to the broker are given up on and made again.
CUT = ZMTP_HEARTBEAT[1] / 1000 + 2.0


def test_the_gateway_host_cut_off_while_a_cell_prints(bed: NetChain) -> None:
    """Tests the gateway's host unplugged past the heartbeat while a cell prints a line every
    0.2 s: the gateway says it lost the broker and that the link is up again, and once back,
    the cell's output (printed while it was away) is all there, each line once, in order;
    the next cell runs."""
    start(bed, devices=1)
    assert bed.gateway is not None
    lines = 40
    code = ("import time\nfor i in range(%d):\n    print(i, flush=True)\n    time.sleep(0.2)"
            % lines)
    assert bed.evaluate("u/ws/1", code)[0] == 202
    wait_until(lambda: output_text(bed.update("u/ws/1")[1]).startswith("0\n"), 30, "started")
    bed.bed.cut("gateway")
    try:
        bed.gateway.wait_for_log(r"lost its link to the broker at", timeout=CUT + 10)
        time.sleep(max(0.0, CUT - ZMTP_HEARTBEAT[1] / 1000))  # away CUT s in all
    finally:
        bed.bed.plug("gateway")
    bed.gateway.wait_for_log(r"link to the broker at \S+ is up again", timeout=30)
    doc = bed.wait_done("u/ws/1", 60)
    assert output_text(doc) == "".join(f"{i}\n" for i in range(lines)), doc["output"]
    assert output_text(run(bed, "u/ws/2", "print('next')")) == "next\n"


def test_loss_in_one_direction_only(bed: NetChain) -> None:
    """Tests 25 % of the packets from the broker to each device and to the gateway dropped,
    none the other way (an asymmetric path): every cell completes, its output once."""
    start(bed)
    for host in ("gateway", "dev0", "dev1"):
        bed.bed.lose(host, "broker", 25, outbound=False)
    for n in range(CELLS):
        assert output_text(run(bed, f"u/ws{n % 2}/{n}", f"print({n})")) == f"{n}\n"
    assert output_text(run(bed, "u/ws0/big", "print('z' * 100000)")) == "z" * 100000 + "\n"

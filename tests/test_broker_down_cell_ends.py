"""A cell that ends while its broker is dead (SIGKILL) and before a new one starts: its end
(reply and idle) waits in the device's outbox, and the new broker, reconciling what the
device holds, must not take the cell for lost: it ends done, with every line once."""

from __future__ import annotations

import signal
import time

import pytest

from harness import Chain
from test_failures import wait_output

CODE = "import time\nfor i in range(20):\n    print(i, flush=True)\n    time.sleep(0.05)"


@pytest.mark.parametrize("round_", range(2))
def test_a_cell_that_ends_while_the_broker_is_dead_ends_done(chain: Chain, round_: int) -> None:
    chain.start_broker()
    chain.start_gateway()
    device = chain.start_device(name="dev")
    for n in range(3):
        cell = f"u/ws{n}/1"
        assert chain.evaluate(cell, CODE)[0] == 202
        wait_output(chain, cell, "2\n")
        assert chain.broker is not None
        chain.broker.stop(signal.SIGKILL)
        device.wait_for_log(r"lost its link to the broker")
        # the cell ends meanwhile (1 s of lines left): its end waits in the outbox
        time.sleep(1.5 + 0.2 * round_)
        chain.start_broker()
        doc = chain.wait_done(cell, timeout=30)
        errors = [b for b in doc["output"].values() if b["type"] == "error"]
        assert doc["status"] == "done" and not errors, (round_, n, doc["status"], errors,
                                                        chain.broker.log)
        assert doc["output"]["stdout_0"]["content"] == "".join(f"{i}\n" for i in range(20))

"""An interact's output through a broker restart: the cell's document shows the output of
the interact's last run, not the output its cell's own run left, however the broker that
folded it went (SIGKILL, or a graceful stop) and whether the last change came just before."""

from __future__ import annotations

import signal

import pytest

from harness import Chain, wait_broker_answers
from test_chain_interact import interact_block, post_interact, text_of, wait_interact_text

CODE = "@interact\ndef f(n=(1, 100)):\n    print(n)"
STRADDLE = ("import time\n@interact\ndef f(n=(1, 100)):\n    print(n, flush=True)\n"
            "    time.sleep(1.5)\n    print(n + 100)")
#: STRADDLE with time for a broker restart and a fold between its lines on a loaded machine
#: (1.5 s was not always enough: the view then showed both lines already), in the run of
#: n=12 only: the cell's own first run (n=1) goes on at once.
STRADDLE_LONG = STRADDLE.replace("time.sleep(1.5)", "time.sleep(8 if n == 12 else 0)")
SLOW = "import time\n@interact\ndef f(n=(1, 100)):\n    print(n, flush=True)\n    time.sleep(1.5)"


CELL = "u/ws/1"


def interact_of(chain: Chain, code: str) -> str:
    """A chain started, ``code`` run in :data:`CELL`: the interact_id its output shows."""
    chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    assert chain.evaluate(CELL, code)[0] == 202
    return interact_block(chain.wait_done(CELL))["interact_id"]


def restart_broker(chain: Chain, sig: int = signal.SIGKILL) -> None:
    broker = chain.broker
    assert broker is not None
    broker.stop(sig)
    chain.start_broker()
    wait_broker_answers(chain)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_an_interact_shows_its_last_run_after_a_broker_restart(chain: Chain, sig: int) -> None:
    """Tests that the last of three changes of a slider, run and shown, is still what the
    cell's document shows once the broker restarted (before: a view rebuilt from the store
    folded only the cell's own run, so the slider's output went back to its default, 1)."""
    interact, cell = interact_of(chain, CODE), CELL
    for state in (1, 2, 3):
        assert post_interact(chain, cell, interact, {"n": 10 + state}, state)[0] == 202
    wait_interact_text(chain, cell, "13\n")
    restart_broker(chain, sig)
    status, doc = chain.update(cell)
    assert status == 200, doc
    assert text_of(interact_block(doc)) == "13\n"
    assert post_interact(chain, cell, interact, {"n": 20}, 4)[0] == 202
    wait_interact_text(chain, cell, "20\n")  # and the next change shows as before


def test_a_change_waiting_when_the_broker_died_shows_once_it_ran(chain: Chain) -> None:
    """Tests that a change accepted while the run before it was still going, when the
    broker is SIGKILLed, runs from the new broker and shows in the cell's document: the new
    broker never accepted that run, and knows it by its output (before: the document kept
    the cell's own output, 1, for good)."""
    interact, cell = interact_of(chain, SLOW), CELL
    assert post_interact(chain, cell, interact, {"n": 11}, 1)[0] == 202
    wait_interact_text(chain, cell, "11\n")  # run 1 printed, and sleeps
    assert post_interact(chain, cell, interact, {"n": 12}, 2)[0] == 202
    restart_broker(chain)  # run 2 waits for run 1 to end
    chain.update(cell)  # the view is folded from the store now, before run 2 ran
    wait_interact_text(chain, cell, "12\n")


def test_a_run_the_broker_died_in_shows_whole(chain: Chain) -> None:
    """Tests that a run which printed its first line through the old broker and its second
    through the new one shows both, when the cell's view was folded from the store in
    between (before: the view showed the stored line, then only the second one, as the run
    the new broker heard of began there)."""
    interact, cell = interact_of(chain, STRADDLE_LONG), CELL
    assert post_interact(chain, cell, interact, {"n": 12}, 1)[0] == 202
    wait_interact_text(chain, cell, "12\n")  # stored; the run sleeps before its next line
    restart_broker(chain)
    status, doc = chain.update(cell)  # the view is folded from the store, mid-run
    assert status == 200 and text_of(interact_block(doc)) == "12\n", doc
    wait_interact_text(chain, cell, "12\n112\n")

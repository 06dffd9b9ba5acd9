"""A prompt belongs to its run: a background thread's input() that outlives its cell ends
with EOFError and does not block the next cell's prompts (real worker, real link)."""

from __future__ import annotations

import textwrap

from protocol import msgtypes as mt
from test_session_input import answer, ask
from test_session_worker import Worker, reply, stream_text, worker  # noqa: F401

LATE = """
    import sys, threading, time
    def late():
        try:
            input("late? ")
        except EOFError as e:
            print("late input ended:", e)
    t = threading.Thread(target=late)
    t.start()
    deadline = time.monotonic() + 10
    while not sys.stdin._asker._lock.locked() and time.monotonic() < deadline:
        time.sleep(0.01)  # until the thread holds the prompt
    """


def test_a_stale_prompt_of_an_ended_cell_does_not_block_the_next(worker: Worker) -> None:
    first = worker.submit(textwrap.dedent(LATE))
    seen: list[dict] = []
    while not (any(r["msg_type"] == mt.INPUT_REQUEST for r in seen)
               and any(r["msg_type"] == "status" and r["content"]["execution_state"] == "idle"
                       for r in seen)):
        record = worker.link.recv()
        assert record is not None, worker.stderr()
        seen.append(record)
    assert [r["content"]["prompt"] for r in seen if r["msg_type"] == mt.INPUT_REQUEST] == [
        "late? "] and reply(seen)["status"] == "ok"
    assert all(r["parent"] == first for r in seen)

    # The late thread prints its ending in several writes (print's own), at whatever time
    # it is scheduled: wait for it so that all of them land before the next cell ends.
    second, prompt, before = ask(worker, "t.join(10); print(input('second? '))")
    assert prompt["parent"] == second and prompt["content"]["prompt"] == "second? "
    answer(worker, {"value": "yes"})
    records = before + worker.collect()
    assert reply(records)["status"] == "ok"
    assert "second? yes\nyes\n" in stream_text(records)
    # The late thread was told, with the reason, when its cell ended.
    assert "late input ended: the cell that asked for input has ended" in \
        stream_text(seen + records)

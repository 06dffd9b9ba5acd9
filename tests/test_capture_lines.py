"""The worker's output coalescer (session/capture.py) keeps a line together: a ``print``
writes its text and then its newline, and a worker descheduled between the two (a loaded
machine) sent them as two stream records before. Whole lines still go out within the
coalescing delay, and an unfinished line goes out on its own after ``LINE_WAIT``.

The pauses below stand for the worker being descheduled between two writes (the fault
itself); the checks wait on what the sink received."""

from __future__ import annotations

import threading
import time

from session.capture import FLUSH_DELAY, LINE_WAIT, Coalescer


class Sink:
    def __init__(self) -> None:
        self.sent: list[tuple[float, str, str]] = []
        self.arrived = threading.Condition()

    def __call__(self, name: str, text: str) -> None:
        with self.arrived:
            self.sent.append((time.monotonic(), name, text))
            self.arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[str]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.sent) >= count, timeout), self.sent
            return [text for _, _, text in self.sent]


def test_a_print_split_by_a_pause_is_one_record() -> None:
    """Tests that ``2`` and its newline written 20 ms apart (4x the coalescing delay) are
    sent as one ``2\\n`` (before: ``2``, then ``\\n``)."""
    sink = Sink()
    out = Coalescer(sink)
    out.write("stdout", "2")
    time.sleep(4 * FLUSH_DELAY)
    out.write("stdout", "\n")
    assert sink.wait_for(1) == ["2\n"]
    out.write("stdout", "3\n")
    assert sink.wait_for(2) == ["2\n", "3\n"]


def test_whole_lines_go_at_once_and_the_unfinished_rest_after_its_wait() -> None:
    """Tests that the whole lines before an unfinished one are sent within the coalescing
    delay, the unfinished rest once ``LINE_WAIT`` is over, nothing lost, in order."""
    sink = Sink()
    out = Coalescer(sink)
    began = time.monotonic()
    out.write("stdout", "a\nb")
    assert sink.wait_for(1) == ["a\n"]
    assert sink.sent[0][0] - began < LINE_WAIT
    assert sink.wait_for(2) == ["a\n", "b"]
    assert sink.sent[1][0] - began >= LINE_WAIT


def test_a_flush_sends_the_unfinished_line_at_once() -> None:
    """Tests that an explicit flush (``print(..., flush=True)``, a prompt, the end of a
    cell) sends an unfinished line without waiting, and that other streams keep their
    order around a line held back."""
    sink = Sink()
    out = Coalescer(sink)
    out.write("stderr", "warn\n")
    out.write("stdout", "Name: ")
    began = time.monotonic()
    out.flush()
    assert sink.wait_for(2) == ["warn\n", "Name: "]
    assert time.monotonic() - began < LINE_WAIT
    assert [name for _, name, _ in sink.sent] == ["stderr", "stdout"]

"""What a worker wrote to its descriptors 1 and 2 just before it died is shown, once and in
order, before the error of its death. C code's last words go there: an ``assert`` that fails
writes its line to stderr and aborts, a library prints and then segfaults. The worker read
those pipes itself, so whatever was still in them when it died died with it: the cell showed
only "WorkerDied: ... killed by signal 6 (SIGABRT)", never why. Real chain, real workers."""

from __future__ import annotations

from typing import Any

import pytest

from harness import Chain

#: Each death: the cell's code, the stream, and what it must show there.
DEATHS = {
    "assert then abort": (
        "import os\nos.write(2, b'calc.c:12: main: Assertion `n > 0` failed.\\n')\n"
        "os.abort()\n",
        "stderr", "calc.c:12: main: Assertion `n > 0` failed.\n"),
    "write then segfault": (
        "import ctypes, os\nos.write(1, b'solving 4096 x 4096\\n')\nctypes.string_at(0)\n",
        "stdout", "solving 4096 x 4096\n"),
}

#: Lines written as fast as the worker's reader takes them, then a death: its reader holds
#: some it has not sent, so what was in the pipe after them cannot follow without a gap.
FLOOD = "import os\nfor i in range(3000):\n    os.write(1, b'line %d\\n' % i)\nos._exit(3)\n"


def blocks(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return sorted((b for b in doc["output"].values() if b["type"] == kind),
                  key=lambda b: b["order"])


@pytest.mark.parametrize("death", list(DEATHS))
def test_what_a_dying_worker_wrote_to_its_descriptors_is_shown(chain: Chain,
                                                               death: str) -> None:
    code, stream, shown = DEATHS[death]
    chain.start_broker()
    chain.start_gateway()
    chain.start_device(name="dev")
    for round_ in range(3):  # the reader thread may or may not have read some of it
        cell = f"u/ws{round_}/1"
        assert chain.evaluate(cell, code)[0] == 202
        doc = chain.wait_done(cell, timeout=30)
        assert doc["status"] == "error", doc
        text = "".join(b["content"] for b in blocks(doc, "text") if b.get("stream") == stream)
        assert text == shown, (round_, text[-300:])
        errors = blocks(doc, "error")
        assert [e["ename"] for e in errors] == ["WorkerDied"], errors
        assert max(b["order"] for b in blocks(doc, "text")) < errors[0]["order"]
    assert chain.evaluate("u/ws0/2", "print('next')")[0] == 202
    after = chain.wait_done("u/ws0/2", timeout=30)
    assert after["status"] == "done" and "next\n" in [
        b["content"] for b in blocks(after, "text")]


def test_a_death_amid_a_flood_to_a_descriptor_leaves_a_whole_prefix_once(chain: Chain) -> None:
    chain.start_broker()
    chain.start_gateway()
    chain.start_device(name="dev")
    for round_ in range(5):
        cell = f"u/ws{round_}/1"
        assert chain.evaluate(cell, FLOOD)[0] == 202
        doc = chain.wait_done(cell, timeout=30)
        assert [e["ename"] for e in blocks(doc, "error")] == ["WorkerDied"], doc
        text = "".join(b["content"] for b in blocks(doc, "text") if b.get("stream") == "stdout")
        lines = text.splitlines()
        whole = lines if text.endswith("\n") else lines[:-1]
        assert whole == [f"line {i}" for i in range(len(whole))], "a gap or a repeat"

"""Execution numbers as Jupyter counts them, over a real chain (broker, device with sandboxed
workers, gateway, HTTP): blank code and the page's Keep (an evaluation of nothing under the
cell ``keepalive``) do not advance a session's count, Keep is no cell of the worksheet, and
``/update`` says each run's execution number, an interrupted run's too."""

from __future__ import annotations

import json
import time
from typing import Any

from harness import Chain

WS = "ida/counts"


def run(chain: Chain, cell: str, code: str) -> dict[str, Any]:
    """Evaluate ``code`` in cell ``cell`` of :data:`WS`; the finished cell's document."""
    status, answer = chain.evaluate(f"{WS}/{cell}", code)
    assert status == 202, answer
    return chain.wait_done(f"{WS}/{cell}", timeout=60)


def wait_output(chain: Chain, cell: str, text: str, timeout: float = 30) -> None:
    """Wait until ``cell``'s stored output shows ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, doc = chain.update(f"{WS}/{cell}", wait=2)
        if status == 200 and text in json.dumps(doc["output"]):
            return
    raise AssertionError(f"{cell} never printed {text!r}")


def test_blank_code_and_keep_do_not_count(running_chain: Chain) -> None:
    """Tests that empty and whitespace-only code and Keep's run leave the count where it was
    (the next traceback names <cell-2>), that /update says each run's number, and that the
    layout's ``ran`` names the worksheet's cells but not Keep's."""
    chain = running_chain
    assert run(chain, "1", "a = 1")["execution_count"] == 1
    for cell, code in (("2", ""), ("3", "   \n\t")):
        doc = run(chain, cell, code)
        assert doc["status"] == "done", doc
        assert doc["execution_count"] is None, doc  # no number of its own
    assert run(chain, "keepalive", "")["status"] == "done"
    doc = run(chain, "4", "1/0")
    assert doc["execution_count"] == 2, doc
    error = [b for b in doc["output"].values() if b["type"] == "error"][0]
    assert any("<cell-2>" in line for line in error["traceback"]), error
    assert run(chain, "5", "a + 1")["execution_count"] == 3
    status, layout = chain.http("GET", f"/home/{WS}/layout")
    assert status == 200, layout
    assert layout["ran"] == ["1", "2", "3", "4", "5"], layout
    status, notebook = chain.http("GET", f"/home/{WS}/notebook.ipynb")
    assert status == 200, notebook
    notebook = json.loads(notebook) if isinstance(notebook, bytes) else notebook
    assert [c["id"] for c in notebook["cells"]] == ["1", "2", "3", "4", "5"], notebook
    assert [c["execution_count"] for c in notebook["cells"]] == [1, None, None, 2, 3], notebook
    status, doc = chain.update(f"{WS}/1")
    assert status == 200 and doc["execution_count"] == 1, doc  # read again, later


def test_an_interrupted_run_keeps_its_number(running_chain: Chain) -> None:
    """Tests that a run stopped by an interrupt says its execution number in /update."""
    chain = running_chain
    assert run(chain, "1", "b = 2")["execution_count"] == 1
    status, answer = chain.evaluate(f"{WS}/2", "import time\nprint('started', flush=True)\n"
                                               "time.sleep(60)")
    assert status == 202, answer
    wait_output(chain, "2", "started")
    status, answer = chain.http("POST", f"/home/{WS}/2/interrupt", b"{}")
    assert status == 202, answer
    doc = chain.wait_done(f"{WS}/2", timeout=30)
    assert doc["status"] == "error", doc
    assert doc["execution_count"] == 2, doc
    assert isinstance(doc["usage"], dict), doc

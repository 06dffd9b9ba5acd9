"""``GET /home/USER/WORKSHEET/notebook.ipynb`` (broker/notebook.py) over a real chain: a
worksheet as an nbformat 4 notebook that nbformat validates, its cells from the layout (or,
without one, from the store in cell-id order) with the stored outputs of their latest runs,
the user's own only; and Jupyter runs the downloaded notebook to the same outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from access_util import JSON, Answer, add_user, bearer, call, evaluate_body
from harness import Chain
from test_browser import PNG_B64

nbformat = pytest.importorskip("nbformat")

#: Cells by id, each run once in this order (the execution counts follow it).
CODE = {
    "10": "print('ten')",
    "2": "import base64\n"
         "class Dot:\n"
         "    def _repr_png_(self):\n"
         f"        return base64.b64decode('{PNG_B64}')\n"
         "display(Dot())\n"
         "6 * 7",
    "3": "print('before')\n1 / 0",
}


def evaluate(chain: Chain, token: str, cell: str, code: str) -> None:
    path = f"/home/ann/notes/{cell}"
    assert call(chain.port, "POST", f"{path}/evaluate", evaluate_body(code),
                {**JSON, **bearer(token)}).status == 202
    doc = call(chain.port, "GET", f"{path}/update?wait=30&until=done", headers=bearer(token))
    assert doc.status == 200 and doc.body["status"] in ("done", "error"), doc.body


def download(chain: Chain, token: str) -> tuple[Answer, Any]:
    got = call(chain.port, "GET", "/home/ann/notes/notebook.ipynb", headers=bearer(token))
    assert got.status == 200, got.body
    nb = nbformat.reads(got.body.decode(), as_version=4)
    nbformat.validate(nb)
    return got, nb


def outputs(cell: Any) -> list[tuple[str, Any]]:
    """A code cell's outputs as (type, what cellbus and Jupyter both say the same way)."""
    out = []
    for o in cell.outputs:
        if o.output_type == "stream":
            out.append(("stream", (o.name, o.text)))
        elif o.output_type == "execute_result":
            out.append(("execute_result", (dict(o.data), o.execution_count)))
        elif o.output_type == "display_data":
            out.append(("display_data", o.data["image/png"]))
        else:
            out.append(("error", (o.ename, o.evalue)))
    return out


def test_notebook_download_has_the_cells_and_their_outputs(chain: Chain) -> None:
    """Tests the notebook of a worksheet without a layout (its cells by id: 2, 3, 10, with
    their inputs), then with one (its order, a Markdown cell, a cell never run, a cell whose
    output the page hid, a cell whose output the page cleared (outputs_cleared: its run's
    id), and no cell it does not name); each run's stream, image, result and error; the
    attachment's name; 404 for another user; and that Jupyter (nbclient) runs it to the same
    outputs. Before, a cleared output was in the download all the same."""
    ann, bob = add_user(chain, "ann"), add_user(chain, "bob")
    chain.start_broker()
    chain.start_device()
    chain.start_gateway("--auth", "token")
    for cell, code in CODE.items():
        evaluate(chain, ann, cell, code)
    got, nb = download(chain, ann)
    assert got.headers["Content-Disposition"].startswith('attachment; filename="notes.ipynb"')
    assert got.headers["Content-Type"] == "application/x-ipynb+json"
    assert [c.source for c in nb.cells] == [CODE["2"], CODE["3"], CODE["10"]]
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.metadata.language_info.name == "python"
    two, three, ten = nb.cells
    assert outputs(two) == [("display_data", PNG_B64),
                            ("execute_result", ({"text/plain": "42"}, 2))]
    assert [two.execution_count, three.execution_count, ten.execution_count] == [2, 3, 1]
    assert outputs(three) == [("stream", ("stdout", "before\n")),
                              ("error", ("ZeroDivisionError", "division by zero"))]
    assert "ZeroDivisionError" in three.outputs[1].traceback[-1]
    assert outputs(ten) == [("stream", ("stdout", "ten\n"))]
    assert call(chain.port, "GET", "/home/ann/notes/notebook.ipynb",
                headers=bearer(bob)).status == 404

    ten_run = call(chain.port, "GET", "/home/ann/notes/10/update",
                   headers=bearer(ann)).body["request"]
    layout = [{"id": "1", "type": "markdown", "code": "# Notes"},
              {"id": "10", "type": "code", "code": CODE["10"], "outputs_cleared": ten_run},
              {"id": "2", "type": "code", "code": CODE["2"], "outputs_hidden": True},
              {"id": "5", "type": "code", "code": "never_ran = 1"},
              {"id": "3", "type": "code", "code": CODE["3"], "outputs_cleared": "an-older-run"}]
    assert call(chain.port, "POST", "/home/ann/notes/layout", json.dumps({"cells": layout}),
                {**JSON, **bearer(ann)}).status == 200
    _, nb = download(chain, ann)
    assert [(c.cell_type, c.source) for c in nb.cells] == [
        (c["type"], c["code"]) for c in layout]
    assert nb.cells[3].outputs == [] and nb.cells[3].execution_count is None
    # hidden on the page (Escape then O): as JupyterLab and the classic notebook write it
    assert nb.cells[2].metadata == {"collapsed": True, "jupyter": {"outputs_hidden": True}}
    assert [c.metadata for c in nb.cells if c.id != "2"] == [{}] * 4
    assert outputs(nb.cells[2]) == outputs(two)
    # cleared on the page: no outputs and no number, as JupyterLab's Clear Outputs saves it;
    # a clear of an older run than the latest leaves the latest's (cell 3)
    assert nb.cells[1].outputs == [] and nb.cells[1].execution_count is None
    assert outputs(nb.cells[4]) == outputs(three) and nb.cells[4].execution_count == 3
    # the store keeps the cleared run's output: its /update still has it
    kept = call(chain.port, "GET", "/home/ann/notes/10/update", headers=bearer(ann)).body
    assert kept["request"] == ten_run and kept["output"], kept

    nbclient = pytest.importorskip("nbclient")
    del nb.cells[3]  # run in Jupyter what ran in cellbus, in the same order
    ran = nbclient.NotebookClient(nb, timeout=30, allow_errors=True).execute()
    assert [outputs(c) for c in ran.cells[1:]] == [outputs(ten), outputs(two), outputs(three)]


def test_a_download_counts_against_the_rate(chain: Chain) -> None:
    """Tests that a notebook download counts against ``--rate`` as an evaluation does (the
    broker builds the whole worksheet for it): a client looping on big downloads took the
    broker's loop from every user for seconds."""
    ann = add_user(chain, "ann")
    chain.start_broker()
    chain.start_device()
    chain.start_gateway("--auth", "token", "--rate", "2/min")
    evaluate(chain, ann, "1", "print(1)")  # the bucket's first run
    download(chain, ann)  # its second
    refused = call(chain.port, "GET", "/home/ann/notes/notebook.ipynb", headers=bearer(ann))
    assert refused.status == 429, refused.body
    assert "too many requests" in refused.body["error"] and refused.headers["Retry-After"]


def test_outputs_follow_jupyter_rules() -> None:
    """Tests the fold of a run's messages into Jupyter outputs: consecutive stream messages
    of one stream are one output, clear_output clears at once or (wait) at the next output,
    a file's cellbus reference is left out (its name stays), and messages that are no
    output, or malformed, are none; and that nbformat validates the cell."""
    from broker.notebook import jupyter_outputs
    from protocol.msgtypes import FILE_MIME

    def m(kind: str, **content: Any) -> dict[str, Any]:
        return {"msg_type": kind, "content": content}

    run = [m("execute_input", code="...", execution_count=4),
           m("stream", name="stdout", text="gone"), m("clear_output", wait=False),
           m("stream", name="stdout", text="a"), m("stream", name="stdout", text="b\n"),
           m("stream", name="stderr", text="warn\n"), m("stream", name="stdout", text="c"),
           m("clear_output", wait=True), m("interact_start", interact_id="i", controls={}),
           m("stream", name="stdout", text="after the clear\n"),
           m("display_data", data={"text/plain": "notes.txt",
                                   FILE_MIME: {"name": "notes.txt", "mime": "text/plain"}},
             metadata={}),
           m("display_data", data={}, metadata={}), {"msg_type": "stream", "content": None},
           m("stream", name="stdin", text="no such stream"),
           m("execute_result", data={"text/plain": "7"}, metadata={}, execution_count=4),
           m("execute_reply", status="ok", execution_count=4)]
    outputs, count = jupyter_outputs(run)
    assert count == 4
    assert outputs == [
        {"output_type": "stream", "name": "stdout", "text": "after the clear\n"},
        {"output_type": "display_data", "data": {"text/plain": "notes.txt"}, "metadata": {}},
        {"output_type": "execute_result", "data": {"text/plain": "7"}, "metadata": {},
         "execution_count": 4}]
    before, _ = jupyter_outputs(run[:7])
    assert [o["text"] for o in before] == ["ab\n", "warn\n", "c"]
    cell = nbformat.v4.new_code_cell("x", outputs=outputs, execution_count=count)
    nbformat.validate(nbformat.v4.new_notebook(cells=[cell]))

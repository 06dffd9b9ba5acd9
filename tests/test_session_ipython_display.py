"""IPython's own ``display`` (``from IPython.display import display``, as notebooks written
for Jupyter do) shows through the built-in session as its ``display`` does: outside an
IPython shell it printed each object's repr, so JupyterLab on the ``python`` kernel showed
``<IPython.core.display.HTML object>`` where ipykernel shows the bold text."""

from __future__ import annotations

import pytest

from test_session_worker import Worker, of_type, reply, stream_text, worker  # noqa: F401


@pytest.mark.timeout(60)
def test_ipython_display_shows_rich_output(worker: Worker) -> None:  # noqa: F811
    records = worker.execute("""\
        from IPython.display import HTML, Markdown, display
        import IPython.display
        display(HTML("<b>bold</b>"), Markdown("*it*"))
        IPython.display.display({"text/plain": "raw", "text/html": "<i>raw</i>"}, raw=True,
                                metadata={"text/html": {"isolated": True}})
        """)
    assert reply(records)["status"] == "ok", records
    shown = [r["content"] for r in of_type(records, "display_data")]
    assert [s["data"].get("text/html") for s in shown] == ["<b>bold</b>", None, "<i>raw</i>"]
    assert shown[1]["data"]["text/markdown"] == "*it*"
    assert shown[2]["metadata"] == {"text/html": {"isolated": True}}
    assert stream_text(records) == "", records


@pytest.mark.timeout(60)
def test_ipython_clear_output_clears(worker: Worker) -> None:  # noqa: F811
    """``clear_output(wait=True)`` in a loop (a notebook's progress line) sends
    ``clear_output``, so JupyterLab shows the last step only, as with ipykernel; it printed
    terminal escapes (``ESC[2K``), and every step stayed."""
    records = worker.execute("""\
        from IPython.display import clear_output
        for i in range(3):
            clear_output(wait=True)
            print("step", i)
        clear_output()
        """)
    assert reply(records)["status"] == "ok", records
    clears = [r["content"] for r in of_type(records, "clear_output")]
    assert clears == [{"wait": True}] * 3 + [{"wait": False}], records
    assert "\x1b" not in stream_text(records) + stream_text(records, "stderr"), records
    kinds = [r["msg_type"] for r in records if r["msg_type"] in ("stream", "clear_output")]
    assert kinds[:2] == ["clear_output", "stream"] and kinds[-1] == "clear_output", kinds


@pytest.mark.timeout(60)
def test_a_display_with_an_id_is_updated_by_its_handle(worker: Worker) -> None:  # noqa: F811
    """``handle = display(obj, display_id=True)`` then ``handle.update(...)`` (a notebook's
    live progress) sends a ``display_data`` with the id in ``transient`` and then an
    ``update_display_data`` of that id, as ipykernel does, so a Jupyter client replaces the
    display; ``display(..., display_id=ID, update=True)`` too. Before, ``display`` returned
    None and ``handle.update`` raised AttributeError (nbclient through a gateway)."""
    records = worker.execute("""\
        from IPython.display import HTML, display
        handle = display(HTML("<b>one</b>"), display_id=True)
        handle.update(HTML("<b>two</b>"))
        display("three", display_id="mine")
        display("four", display_id="mine", update=True)
        """)
    assert reply(records)["status"] == "ok", records
    shown = [(r["msg_type"], r["content"]["data"].get("text/html") or r["content"]["data"][
        "text/plain"], r["content"]["transient"].get("display_id")) for r in records
        if r["msg_type"] in ("display_data", "update_display_data")]
    first = shown[0][2]
    assert isinstance(first, str) and first, shown
    assert shown == [("display_data", "<b>one</b>", first),
                     ("update_display_data", "<b>two</b>", first),
                     ("display_data", "'three'", "mine"),
                     ("update_display_data", "'four'", "mine")], shown

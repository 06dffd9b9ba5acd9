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

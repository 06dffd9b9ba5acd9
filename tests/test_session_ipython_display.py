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

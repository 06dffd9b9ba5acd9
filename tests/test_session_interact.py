"""@interact inside a real worker process: announce, first run, re-runs, stale states,
bad values, and every control type round-tripping a value."""

from __future__ import annotations

from typing import Any

import pytest

from test_session_worker import Worker, of_type, stream_text, worker  # noqa: F401


def start(worker: Worker, code: str) -> tuple[str, dict[str, Any], list[dict]]:
    records = worker.execute(code)
    begin = of_type(records, "interact_start")[0]["content"]
    kinds = [r["msg_type"] for r in records]
    assert kinds.index("interact_start") < kinds.index("interact_end")
    return begin["interact_id"], begin, records


def rerun(worker: Worker, interact_id: str, values: dict[str, Any], state: int) -> list[dict]:
    worker.send("interact_request", {"interact_id": interact_id, "values": values,
                                     "state": state})
    return worker.collect()


def test_seed_example(worker: Worker) -> None:
    iid, begin, records = start(worker, """
        @interact
        def f(n=slider(1, 20, step=1)):
            print(n)
    """)
    assert begin["controls"] == {"n": {"type": "slider", "start": 1, "end": 20, "step": 1,
                                       "default": 1, "label": "n"}}
    assert begin["layout"] == ["n"] and begin["auto_update"] is True
    kinds = [r["msg_type"] for r in records]
    assert kinds.index("interact_start") < kinds.index("stream") < kinds.index("interact_end")
    assert stream_text(records) == "1\n"
    for state, value in enumerate((3, 5, 7), start=1):
        again = rerun(worker, iid, {"n": value}, state)
        assert stream_text(again) == f"{value}\n"
        reply = of_type(again, "interact_reply")[0]["content"]
        assert reply == {"status": "ok", "interact_id": iid, "state": state, "ignored": False}
    stale = rerun(worker, iid, {"n": 2}, 2)
    assert stream_text(stale) == ""
    assert of_type(stale, "interact_reply")[0]["content"]["ignored"] is True


def test_bad_value_is_an_error_in_the_output_and_the_control_lives_on(worker: Worker) -> None:
    iid, _, _ = start(worker, """
        @interact(auto_update=False)
        def f(x=input_box(1.5, type=float)):
            print(x * 2)
    """)
    bad = rerun(worker, iid, {"x": "abc"}, 1)
    error = of_type(bad, "error")[0]["content"]
    assert error["ename"] == "ValueError" and "'abc' is not a valid float" in error["evalue"]
    assert stream_text(rerun(worker, iid, {"x": "2.5"}, 2)) == "5.0\n"


def test_errors_in_the_function_show_the_users_traceback(worker: Worker) -> None:
    iid, _, records = start(worker, """
        @interact
        def f(n=(0, 10)):
            print(10 // n)
    """)
    error = of_type(records, "error")[0]["content"]
    assert error["ename"] == "ZeroDivisionError"
    assert any("10 // n" in line for line in error["traceback"])
    assert of_type(records, "execute_reply")[0]["content"]["status"] == "ok"  # the cell ran
    assert stream_text(rerun(worker, iid, {"n": 5}, 1)) == "2\n"


@pytest.mark.parametrize("control,sent,expected", [
    ("slider(0, 1, step=0.25)", 0.6, "0.5"),
    ("range_slider(0, 10, default=(2, 4))", [7, 3], "(3, 7)"),
    ("input_box('a')", "hello", "'hello'"),
    ("input_box(1, type=int)", "42", "42"),
    ("checkbox(False)", True, "True"),
    ("selector(['red', 'green', 'blue'])", 2, "'blue'"),
    ("selector([10, 20], buttons=True)", "20", "20"),
    ("color_selector('#ff0000')", "#00FF00", "'#00ff00'"),
    ("input_grid(2, 2, default=0, type=int)", [["1", "2"], ["3", "4"]], "[[1, 2], [3, 4]]"),
    ("button('Go')", True, "True"),
    ("(1, 9, 2)", 4, "5"),
    ("True", False, "False"),
    ("'text'", "typed", "'typed'"),
    ("['a', 'b']", 1, "'b'"),
])
def test_every_control_round_trips_a_value(worker: Worker, control: str, sent: Any,
                                            expected: str) -> None:
    iid, begin, _ = start(worker, f"""
        @interact
        def f(v={control}):
            print(repr(v))
    """)
    assert begin["controls"]["v"]["type"] in ("slider", "range_slider", "input_box", "checkbox",
                                              "selector", "color_selector", "input_grid",
                                              "button")
    assert stream_text(rerun(worker, iid, {"v": sent}, 1)) == f"{expected}\n"


def test_unknown_interact_and_malformed_requests(worker: Worker) -> None:
    unknown = rerun(worker, "nope", {}, 1)
    assert of_type(unknown, "error")[0]["content"]["ename"] == "LookupError"
    worker.send("interact_request", {"interact_id": "x", "values": [], "state": "1"})
    malformed = worker.collect()
    assert of_type(malformed, "interact_reply")[0]["content"]["status"] == "error"

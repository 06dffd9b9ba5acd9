"""Retention's reduction of one request's messages (broker/store/compaction.py): whatever the
messages, the reduced ones fold to the same output, and reducing again changes nothing."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.store.compaction import reduce_run, same_output
from protocol.fold import fold

Seqd = tuple[int, dict[str, Any]]


def message(msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    header = {"msg_id": f"m-{id(content)}", "msg_type": msg_type, "session": "s"}
    return {"header": header, "msg_id": header["msg_id"], "msg_type": msg_type,
            "parent_header": {"msg_id": "r"}, "metadata": {"cellbus": {"session": "s"}},
            "content": content, "buffers": []}


PARTS = st.one_of(
    st.builds(lambda n, t: ("stream", {"name": n, "text": t}),
              st.sampled_from(["stdout", "stderr"]), st.sampled_from(["a", "b\n", ""])),
    st.builds(lambda i: ("display_data", {"data": {"image/png": f"img{i}"}}), st.integers(0, 9)),
    st.builds(lambda w: ("clear_output", {"wait": w}), st.booleans()),
    st.just(("error", {"ename": "E", "evalue": "v", "traceback": []})),
    st.just(("execute_result", {"data": {"text/plain": "42"}})),
    st.just(("display_data", {"data": {}})),  # shows nothing
    st.just(("interact_start", {"interact_id": "f", "controls": {}, "layout": []})),
    st.just(("interact_end", {})),
    st.sampled_from([("status", {"execution_state": "busy"}),
                     ("execute_input", {"code": "x"}),
                     ("execute_reply", {"status": "ok"}),
                     ("status", {"execution_state": "idle"})]),
)


def apply_plan(run: list[Seqd], delete: list[int], rewrite: dict[int, Any]) -> list[Seqd]:
    assert set(delete) <= {s for s, _ in run} and set(rewrite) <= {s for s, _ in run}
    assert not set(delete) & set(rewrite)
    return [(s, rewrite.get(s, m)) for s, m in run if s not in delete]


@settings(max_examples=400, deadline=None)
@given(st.lists(PARTS, max_size=40), st.lists(st.integers(1, 3), min_size=40, max_size=40))
def test_reduction_folds_the_same_and_is_stable(parts: list[Any], gaps: list[int]) -> None:
    """Tests that any message list (with gaps between seqs, as after an earlier compaction)
    reduces to messages that fold the same, and that a second reduction changes nothing."""
    seq, run = 0, []
    for (msg_type, content), gap in zip(parts, gaps):
        seq += gap
        run.append((seq, message(msg_type, dict(content))))
    delete, rewrite = reduce_run(run)
    reduced = apply_plan(run, delete, rewrite)
    assert same_output(run, reduced)
    assert reduce_run(reduced) == ([], {})


def test_a_stream_becomes_one_message() -> None:
    """Tests that 100 lines of output and the noise around them keep 3 messages: the text
    (whole, at the seq of its first line, where its block starts), the reply and idle."""
    run = [(1, message("status", {"execution_state": "busy"})),
           (2, message("execute_input", {"code": "x"}))]
    run += [(3 + i, message("stream", {"name": "stdout", "text": f"{i}\n"})) for i in range(100)]
    run += [(103, message("execute_reply", {"status": "ok"})),
            (104, message("status", {"execution_state": "idle"}))]
    delete, rewrite = reduce_run(run)
    reduced = apply_plan(run, delete, rewrite)
    assert [s for s, _ in reduced] == [3, 103, 104]
    assert reduced[0][1]["content"]["text"] == "".join(f"{i}\n" for i in range(100))
    assert reduced[0][1]["header"] == run[2][1]["header"]
    assert fold(reduced).blocks() == fold(run).blocks()


def test_cleared_frames_become_placeholders_and_ids_stay() -> None:
    """Tests that an animation (clear, frame, clear, frame ...) keeps its last frame whole,
    with its block id, and an empty placeholder for each frame before."""
    run: list[Seqd] = []
    for i in range(10):
        run += [(2 * i + 1, message("clear_output", {"wait": True})),
                (2 * i + 2, message("display_data", {"data": {"image/png": "x" * 1000}}))]
    run.append((21, message("status", {"execution_state": "idle"})))
    delete, rewrite = reduce_run(run)
    reduced = apply_plan(run, delete, rewrite)
    assert len(reduced) == 9 + 3
    assert list(fold(reduced).blocks()) == ["image_9"]
    assert sum(len(str(m)) for _, m in reduced) < sum(len(str(m)) for _, m in run) / 3

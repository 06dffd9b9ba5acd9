"""protocol.fold on message streams recorded from a real device (tests/data/streams/record.py)."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.fold import CellOutput, fold

STREAMS = Path(__file__).parent / "data" / "streams"
RECORDED = sorted(p.stem for p in STREAMS.glob("*.json"))
Stream = list[tuple[int, dict[str, Any]]]


def load(name: str) -> Stream:
    return [(seq, msg) for seq, msg in json.loads((STREAMS / f"{name}.json").read_text())]


def msg(msg_type: str, **content: Any) -> dict[str, Any]:
    """A hand-built message of the shape protocol.wire produces."""
    return {"header": {"msg_type": msg_type}, "msg_id": "x", "msg_type": msg_type,
            "parent_header": {}, "metadata": {}, "content": content, "buffers": []}


def spaced(stream: Stream, step: int = 10) -> Stream:
    """The stream with seqs 10, 20, 30 ..., leaving room to insert messages between."""
    return [(i * step, m) for i, (_, m) in enumerate(stream, 1)]


def with_inserted(stream: Stream, *extra: tuple[int, dict[str, Any]]) -> Stream:
    return sorted([*stream, *extra], key=lambda pair: pair[0])


def url(seq: int, name: str) -> str:
    return f"/files/{seq}/{name}"


def test_seed_walk_through() -> None:
    """Seed 000 steps 8-10: stdout_0 grows, closes before the plot; then image, then hello."""
    stream = load("seed")
    out = CellOutput()
    seen = []
    for seq, m in stream:
        out.apply(seq, m)
        if "stdout_0" in out.blocks():
            b = out.blocks()["stdout_0"]
            seen.append((b["content"], b["state"]))
    assert seen[:3] == [("2\n", "open"), ("2\n3\n", "open"), ("2\n3\n", "closed")]
    blocks = out.blocks()
    assert list(blocks) == ["stdout_0", "image_1", "stdout_2"]
    assert blocks["stdout_0"] == {"type": "text", "stream": "stdout", "content": "2\n3\n",
                                  "order": 0, "state": "closed", "seq": 5}
    image = blocks["image_1"]
    assert (image["type"], image["mime"], image["order"], image["state"]) == (
        "image", "image/png", 1, "closed")
    assert image["data"].startswith("iVBORw0KGgo")  # base64 of the PNG signature
    assert "content" not in image and "text/plain" not in str(image)
    assert blocks["stdout_2"] == {"type": "text", "stream": "stdout", "content": "hello\n",
                                  "order": 2, "state": "closed", "seq": 7}
    assert out.seq == 8 and out.changed == 7


def test_interleaved_streams_alternate_blocks() -> None:
    blocks = fold(load("interleaved")).blocks()
    assert [(bid, b["content"], b["state"]) for bid, b in blocks.items()] == [
        ("stdout_0", "out 1\n", "closed"), ("stderr_1", "err 1\nerr 2\n", "closed"),
        ("stdout_2", "out 2\n", "closed")]


def test_exception_after_output() -> None:
    blocks = fold(load("error")).blocks()
    assert list(blocks) == ["stdout_0", "error_1"]
    assert blocks["stdout_0"]["content"] == "before\n"
    assert blocks["stdout_0"]["state"] == "closed"
    error = blocks["error_1"]
    assert (error["ename"], error["evalue"], error["state"]) == (
        "ZeroDivisionError", "division by zero", "closed")
    assert any("1 / 0" in line for line in error["traceback"])


def test_a_prompt_is_an_input_block_open_until_the_run_goes_on() -> None:
    stream: Stream = [(1, msg("stream", name="stdout", text="hi\n")),
                      (2, msg("input_request", prompt="Key: ", password=True))]
    out = fold(stream)
    assert out.blocks()["input_1"] == {"type": "input", "prompt": "Key: ", "password": True,
                                       "order": 1, "state": "open", "seq": 2}
    assert out.blocks()["stdout_0"]["state"] == "closed"
    out.apply(3, msg("stream", name="stdout", text="Key: \n"))
    assert out.blocks()["input_1"]["state"] == "closed"
    assert fold([(1, msg("input_request", prompt=5))]).blocks() == {}  # malformed: ignored


def test_file_block_gets_a_url_from_file_url() -> None:
    blocks = fold(load("file"), file_url=url).blocks()
    assert list(blocks) == ["file_0", "text_1"]
    assert blocks["file_0"] == {"type": "file", "name": "a.txt", "size": 1, "mime": "text/plain",
                                "url": "/files/3/a.txt", "order": 0, "state": "closed", "seq": 3}
    assert blocks["text_1"]["stream"] == "result" and blocks["text_1"]["content"] == "1"
    assert "url" not in fold(load("file")).blocks()["file_0"]


def test_too_large_file_has_no_url() -> None:
    stream = copy.deepcopy(load("file"))
    stream[2][1]["content"]["data"]["application/x-cellbus-file+json"]["too_large"] = True
    block = fold(stream, file_url=url).blocks()["file_0"]
    assert "url" not in block and block["too_large"] is True


def test_an_update_of_a_display_is_one_more_display() -> None:
    """A Jupyter kernel's ``update_display_data`` (its own type on the bus, so that Jupyter
    clients update the display it names): the page, which has no display ids, shows it as a
    display after the one it updates, as it did while the session sent it as one."""
    shown = {"data": {"text/html": "<b>1</b>"}, "metadata": {}, "transient": {"display_id": "d"}}
    update = {**shown, "data": {"text/html": "<b>2</b>"}}
    blocks = fold([(1, msg("display_data", **shown)),
                   (2, msg("update_display_data", **update))]).blocks()
    assert [(bid, b["content"]) for bid, b in blocks.items()] == [
        ("html_0", "<b>1</b>"), ("html_1", "<b>2</b>")]


def test_expression_result() -> None:
    assert fold(load("result")).blocks() == {"text_0": {
        "type": "text", "stream": "result", "content": "2", "order": 0, "state": "closed",
        "seq": 3}}


@pytest.mark.parametrize("data,expected", [
    ({"text/plain": "x", "text/html": "<b>x</b>"}, ("html_0", {"content": "<b>x</b>"})),
    ({"text/plain": "x", "image/svg+xml": "<svg/>", "text/html": "<b/>"},
     ("image_0", {"mime": "image/svg+xml", "data": "<svg/>"})),
    ({"image/jpeg": "/9j/", "image/png": "iVBO"}, ("image_0", {"mime": "image/png"})),
    ({"image/gif": "R0lG", "text/plain": "g"}, ("image_0", {"mime": "image/gif"})),
    ({"text/plain": "M()", "text/markdown": "*m*"},
     ("text_0", {"content": "*m*", "mime": "text/markdown", "stream": "display"})),
    ({"text/plain": "p", "image/png": 5}, ("text_0", {"content": "p", "stream": "display"})),
])
def test_richest_mime_is_chosen(data: dict[str, Any], expected: tuple[str, dict]) -> None:
    blocks = fold([(1, msg("display_data", data=data, metadata={}))]).blocks()
    bid, keys = expected
    assert list(blocks) == [bid]
    assert keys.items() <= blocks[bid].items()


@pytest.mark.parametrize("name", RECORDED)
def test_incremental_equals_from_scratch(name: str) -> None:
    stream = load(name)
    out = CellOutput(url)
    changes = [out.apply(seq, m) for seq, m in stream]
    assert out.blocks() == fold(stream, url).blocks()
    for (_, m), changed in zip(stream, changes):
        if m["msg_type"] in ("execute_input",) or m["content"].get("execution_state") == "busy":
            assert not changed


@pytest.mark.parametrize("name", RECORDED)
def test_blocks_since_gives_changed_blocks_whole(name: str) -> None:
    stream = load(name)
    final = fold(stream).blocks()
    for since in range(len(stream) + 1):
        part = fold(stream).blocks(since)
        assert part == {bid: b for bid, b in final.items() if b["seq"] > since}
    # a client polling with since = the seq it last saw, replacing by id, ends up right
    out, client, last = CellOutput(), {}, 0
    for seq, m in stream:
        out.apply(seq, m)
        client.update(out.blocks(last))
        client.update(out.blocks(last))  # a retried poll is harmless
        last = seq
    assert client == final


@pytest.mark.parametrize("name", RECORDED)
def test_replays_change_nothing(name: str) -> None:
    stream = load(name)
    out = CellOutput()
    for seq, m in stream:
        out.apply(seq, m)
        before = out.blocks()
        assert out.apply(seq, m) is False
        assert out.apply(seq - 1, m) is False
        assert out.blocks() == before
    assert [out.apply(seq, m) for seq, m in stream] == [False] * len(stream)
    assert out.blocks() == fold(stream + stream).blocks() == fold(stream).blocks()


def test_clear_output_now() -> None:
    stream = with_inserted(spaced(load("seed")), (55, msg("clear_output", wait=False)))
    out = CellOutput()
    results = {seq: out.apply(seq, m) for seq, m in stream}
    assert results[55] is True
    blocks = out.blocks()
    assert list(blocks) == ["stdout_2"] and blocks["stdout_2"]["content"] == "hello\n"
    assert out.reset_after(50) and out.reset_after(0) and not out.reset_after(55)
    assert out.blocks(50) == blocks
    assert fold(stream).blocks() == blocks


def test_clear_output_wait_clears_at_the_next_output() -> None:
    stream = with_inserted(spaced(load("seed")), (55, msg("clear_output", wait=True)))
    out = CellOutput()
    for seq, m in stream:
        out.apply(seq, m)
        if seq == 55:
            assert list(out.blocks()) == ["stdout_0", "image_1"] and not out.reset_after(0)
    assert list(out.blocks()) == ["stdout_2"]
    assert out.reset_after(59) and not out.reset_after(60)


def test_clear_output_wait_without_later_output_keeps_the_output() -> None:
    stream = with_inserted(spaced(load("seed")), (65, msg("clear_output", wait=True)))
    assert list(fold(stream).blocks()) == ["stdout_0", "image_1", "stdout_2"]


def test_clear_output_on_nothing_and_ids_never_reused() -> None:
    out = CellOutput()
    assert out.apply(1, msg("clear_output", wait=False)) is False and not out.reset_after(0)
    out.apply(2, msg("stream", name="stdout", text="a"))
    out.apply(3, msg("clear_output", wait=False))
    out.apply(4, msg("stream", name="stdout", text="b"))
    assert list(out.blocks()) == ["stdout_1"]


INTERACT = [
    (1, msg("stream", name="stdout", text="before\n")),
    (2, msg("interact_start", interact_id="f1", layout=["n"],
            controls={"n": {"type": "slider", "start": 1, "end": 20, "step": 1}})),
    (3, msg("stream", name="stdout", text="1\n")),
    (4, msg("display_data", data={"image/png": "iVBO", "text/plain": "fig"}, metadata={})),
    (5, msg("stream", name="stdout", text="2\n")),
    (6, msg("interact_end")),
    (7, msg("stream", name="stdout", text="after\n")),
    (8, msg("execute_reply", status="ok")),
    (9, msg("status", execution_state="idle")),
]


def test_interact_output_folds_inside_the_interact_block() -> None:
    out = CellOutput()
    for seq, m in INTERACT[:4]:
        out.apply(seq, m)
    assert list(out.blocks(3)) == ["interact_1"]
    assert out.blocks()["interact_1"]["state"] == "open"
    blocks = fold(INTERACT).blocks()
    assert list(blocks) == ["stdout_0", "interact_1", "stdout_2"]
    interact = blocks["interact_1"]
    assert (interact["interact_id"], interact["layout"], interact["state"], interact["seq"]) == (
        "f1", ["n"], "closed", 6)
    assert interact["controls"]["n"]["type"] == "slider"
    inner = interact["output"]
    assert list(inner) == ["stdout_0", "image_1", "stdout_2"]
    assert [(b["order"], b["state"]) for b in inner.values()] == [
        (0, "closed"), (1, "closed"), (2, "closed")]
    assert inner["stdout_0"]["content"] == "1\n" and inner["stdout_2"]["content"] == "2\n"
    assert blocks["stdout_2"]["content"] == "after\n"


def test_nested_interacts_and_reply_closes_everything() -> None:
    stream = [
        (1, msg("interact_start", interact_id="outer", controls={}, layout=[])),
        (2, msg("interact_start", interact_id="inner", controls={})),
        (3, msg("stream", name="stderr", text="deep")),
        (4, msg("interact_end")),
        (5, msg("stream", name="stderr", text="mid")),
        (6, msg("execute_reply", status="ok")),
    ]
    blocks = fold(stream).blocks()
    outer = blocks["interact_0"]
    assert outer["state"] == "closed" and list(outer["output"]) == ["interact_0", "stderr_1"]
    nested = outer["output"]["interact_0"]
    assert nested["layout"] == [] and nested["state"] == "closed"
    assert nested["output"]["stderr_0"]["content"] == "deep"
    assert outer["output"]["stderr_1"] == {"type": "text", "stream": "stderr", "content": "mid",
                                           "order": 1, "state": "closed", "seq": 6}


def test_clear_output_inside_an_interact_clears_only_its_output() -> None:
    stream = with_inserted(spaced(INTERACT), (45, msg("clear_output", wait=False)))
    blocks = fold(stream).blocks()
    assert list(blocks) == ["stdout_0", "interact_1", "stdout_2"]
    assert list(blocks["interact_1"]["output"]) == ["stdout_2"]


def test_rerun_output_replaces_the_interact_output() -> None:
    out = fold(INTERACT)
    last = out.changed
    rerun = CellOutput()
    rerun.apply(20, msg("stream", name="stdout", text="7\n"))
    assert out.replace_interact_output("f1", 20, rerun) is True
    assert out.replace_interact_output("nope", 21, CellOutput()) is False
    assert list(out.blocks(last)) == ["interact_1"]
    output = out.blocks(last)["interact_1"]["output"]
    assert list(output) == ["stdout_0"] and output["stdout_0"]["content"] == "7\n"
    rerun.apply(21, msg("stream", name="stdout", text="8\n"))
    rerun.apply(22, msg("execute_reply", status="ok"))
    changed = out.blocks(20)
    assert list(changed) == ["interact_1"] and changed["interact_1"]["seq"] == 22
    assert changed["interact_1"]["output"]["stdout_0"] == {
        "type": "text", "stream": "stdout", "content": "7\n8\n", "order": 0,
        "state": "closed", "seq": 22}
    assert out.blocks(22) == {} and out.changed == 22


BAD: list[Any] = [
    None, "stream", [1, {}], {}, {"msg_type": "stream"}, {"msg_type": 3, "content": {}},
    {"msg_type": "stream", "content": ["x"]},
    msg("stream", name=1, text="x"), msg("stream", name="stdout", text=None),
    msg("stream", name="stdin", text="x"), msg("stream", name="stdout"),
    msg("display_data", data="x"), msg("display_data", data={"image/png": 5}),
    msg("display_data", data={"application/x-cellbus-file+json": {"name": "a"}}),
    msg("execute_result", data={"text/plain": None}), msg("display_data"),
    msg("error", ename="E", evalue="v", traceback="no"), msg("error", ename="E"),
    msg("error", ename="E", evalue="v", traceback=[1]),
    msg("interact_start", controls={}), msg("interact_start", interact_id="i", controls=[]),
    msg("interact_start", interact_id="i", layout="n"),
    msg("clear_output", wait="yes"), msg("interact_end"), msg("comm_open", data={}),
    msg("update_display_data", data="x"), msg("status", execution_state=7),
]


def test_malformed_messages_are_ignored() -> None:
    good = spaced(load("seed"), 100)
    bad = [(50 + 100 * i + j, m) for i in range(len(good)) for j, m in enumerate(BAD)]
    out = CellOutput()
    results = {seq: out.apply(seq, m) for seq, m in with_inserted(good, *bad)}
    assert out.blocks() == fold(good).blocks()
    assert not any(results[seq] for seq, _ in bad)
    for seq in ("1", None, True, 1.5):
        text = msg("stream", name="stdout", text="x")
        assert CellOutput().apply(seq, text) is False  # type: ignore[arg-type]
    assert fold([None, (1,), "ab", (1, 2, 3)]).blocks() == {}  # type: ignore[list-item]


def test_status_idle_alone_closes_the_open_block() -> None:
    out = fold([(1, msg("stream", name="stdout", text="x")),
                (2, msg("status", execution_state="idle"))])
    assert out.blocks()["stdout_0"]["state"] == "closed" and out.blocks(1) != {}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3), max_leaves=8)
msg_types = st.sampled_from(["stream", "display_data", "execute_result", "error",
                             "clear_output", "interact_start", "interact_end", "status",
                             "execute_reply", "other"])
contents = st.dictionaries(
    st.sampled_from(["name", "text", "data", "ename", "evalue", "traceback", "wait",
                     "interact_id", "controls", "layout", "execution_state"]),
    json_values | st.sampled_from(["stdout", "stderr", "idle"]), max_size=5)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(msg_types, contents), max_size=25))
def test_random_messages_never_raise(items: list[tuple[str, dict[str, Any]]]) -> None:
    stream = [(i, msg(t, **c)) for i, (t, c) in enumerate(items, 1)]
    out = fold(stream, url)
    orders = [b["order"] for b in out.blocks().values()]
    assert orders == sorted(set(orders))
    assert out.blocks(out.changed) == {}
    inc = CellOutput(url)
    for seq, m in stream:
        inc.apply(seq, m)
    assert inc.blocks() == out.blocks()


def test_a_long_stream_folds_in_linear_time() -> None:
    """Tests that 8 MiB of stdout (the broker's default --cell-output) in 2,048 messages
    folds in well under a second (each message's text was added to the block's whole text
    so far, a copy of up to 8 MiB per message: 8 GiB in all, 10 s here, while the broker's
    loop was held and every other user's cell waited), and that the text read midway,
    after a clear and at the end is whole."""
    piece = "x" * 4095 + "\n"
    out = CellOutput()
    started = time.monotonic()
    for seq in range(1, 2049):
        out.apply(seq, msg("stream", name="stdout", text=piece))
        if seq == 1024:
            assert out.blocks()["stdout_0"]["content"] == piece * 1024
    elapsed = time.monotonic() - started
    assert out.blocks()["stdout_0"]["content"] == piece * 2048
    assert elapsed < 1.0, f"{elapsed:.2f} s"
    out.apply(2049, msg("clear_output", wait=True))
    out.apply(2050, msg("stream", name="stdout", text="after\n"))
    out.apply(2051, msg("stream", name="stdout", text="the clear\n"))
    out.apply(2052, msg("stream", name="stderr", text="err\n"))
    assert [(b["content"], b["state"]) for b in out.blocks().values()] == [
        ("after\nthe clear\n", "closed"), ("err\n", "open")]

"""gateway/browserjson.py: a bus message's JSON for the browser is ``json.dumps`` of its six
keys byte for byte, and the outputs of one request encode their shared parent header once
(its strings were a quarter of each output's encoding: bench/RESULTS.md, issue 25,
thirteenth pass)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import browserjson
from gateway.browserjson import to_json
from protocol import Session
from protocol import msgtypes as mt

KEYS = ("header", "msg_id", "msg_type", "parent_header", "metadata", "content")
BUS = Session(b"k" * 32)


def dumps(msg: dict[str, Any]) -> str:
    return json.dumps({k: msg[k] for k in KEYS}, default=str)


def outputs(request: dict[str, Any]) -> list[dict[str, Any]]:
    """What a print(2) sends, each with its own copy of the parent header (as unpacked)."""
    kinds = [(mt.STATUS, {"execution_state": "busy"}), (mt.STREAM, {"name": "stdout",
             "text": "2\n"}), (mt.EXECUTE_REPLY, {"status": "ok"}),
             (mt.STATUS, {"execution_state": "idle"})]
    return [BUS.msg(kind, content, parent=json.loads(json.dumps(request["header"])),
                    metadata={"cellbus": {"seq": i, "user": "u", "worksheet": "w"}})
            for i, (kind, content) in enumerate(kinds, 1)]


def test_one_request_s_outputs_encode_its_parent_header_once(monkeypatch) -> None:
    encoded: list[Any] = []
    real = browserjson._encode

    def counting(value: Any) -> str:
        encoded.append(value)
        return real(value)

    monkeypatch.setattr(browserjson, "_encode", counting)
    first, second = BUS.msg(mt.EXECUTE_REQUEST, {}), BUS.msg(mt.EXECUTE_REQUEST, {})
    for request in (first, second, first):
        for msg in outputs(request):
            assert to_json(msg) == dumps(msg)
    parents = [v for v in encoded if v.get("msg_type") == mt.EXECUTE_REQUEST]
    assert len(parents) == 3, parents  # was 12: each output encoded its parent's header


def test_a_parent_that_only_looks_the_same_is_encoded_again() -> None:
    """Equal as dicts is not the same text: other key order, or 1 where "1" was."""
    header = BUS.msg(mt.EXECUTE_REQUEST, {})["header"]
    msg = BUS.msg(mt.STREAM, {"text": "x"}, parent=header)
    assert to_json(msg) == dumps(msg)
    msg["parent_header"] = dict(reversed(list(header.items())))
    assert to_json(msg) == dumps(msg)
    msg["parent_header"] = {**header, "version": 1}
    assert to_json(msg) == dumps(msg)
    msg["parent_header"] = {**header, "version": True}
    assert to_json(msg) == dumps(msg)
    msg["parent_header"] = {}
    assert to_json(msg) == dumps(msg)


values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                      | st.text(), lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=8), values, max_size=4),
       st.dictionaries(st.text(max_size=8), st.text(), max_size=6),
       st.dictionaries(st.text(max_size=8), values, max_size=4))
def test_the_text_is_json_dumps(content: dict[str, Any], parent: dict[str, Any],
                                metadata: dict[str, Any]) -> None:
    for _ in range(2):  # encoded, then kept
        msg = BUS.msg(mt.STREAM, content, metadata=metadata)
        msg["parent_header"] = parent
        assert to_json(msg) == dumps(msg)

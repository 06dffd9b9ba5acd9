"""Hypothesis strategies shared by the fuzz tests: hostile values, frames and byte strings."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

#: Text including lone surrogates, control characters and astral characters.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
#: Keys: mostly the names real messages use, sometimes anything.
keys = st.one_of(st.sampled_from(["msg_id", "msg_type", "session", "username", "date",
                                  "version", "code", "input", "name", "text", "data", "cellbus",
                                  "user", "worksheet", "cell_id", "seq", "since", "values",
                                  "state", "interact_id", "header", "content", "metadata"]),
                 any_text)
#: Integers, including ones no 64-bit field can hold.
any_int = st.one_of(st.integers(-(2**64), 2**64), st.sampled_from([2**63, 2**64, -(2**63) - 1,
                                                                   10**30, -(10**30)]))
scalars = st.one_of(st.none(), st.booleans(), any_int,
                    st.floats(allow_nan=True, allow_infinity=True), any_text,
                    st.binary(max_size=40))


def values(*, binary: bool = True) -> st.SearchStrategy[Any]:
    """Nested lists and dicts of hostile scalars (``binary=False``: JSON-representable
    shapes only, for bodies sent as JSON)."""
    leaves = scalars if binary else st.one_of(
        st.none(), st.booleans(), any_int, st.floats(allow_nan=False, allow_infinity=False),
        any_text)
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)), max_leaves=25)


def deep(depth: int, *, as_dict: bool = False) -> Any:
    """A value ``depth`` lists (or dicts) deep."""
    value: Any = 0
    for _ in range(depth):
        value = {"a": value} if as_dict else [value]
    return value


depths = st.sampled_from([50, 99, 100, 101, 150, 511, 600, 1000, 1023, 1024, 1100, 5000])


def deep_json(depth: int) -> bytes:
    """JSON text ``depth`` arrays deep (built as text: json.dumps would recurse)."""
    return b"[" * depth + b"0" + b"]" * depth


def broken_utf8() -> st.SearchStrategy[bytes]:
    """Byte strings that are not valid UTF-8 (lone continuation bytes, overlongs, encoded
    surrogates, truncated sequences), spliced into valid text."""
    bad = st.sampled_from([b"\x80", b"\xbf", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                           b"\xe2\x82", b"\xff", b"\xfe\xff", b"\xf0\x9f\x98"])
    return st.tuples(st.text(max_size=10), bad, st.text(max_size=10)).map(
        lambda t: t[0].encode() + t[1] + t[2].encode())


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """``valid`` with a few bytes flipped, cut, inserted or duplicated."""
    def edit(data: bytes, how: str, at: int, byte: int, span: int) -> bytes:
        at %= len(data) + 1
        if how == "flip" and at < len(data):
            return data[:at] + bytes([data[at] ^ byte]) + data[at + 1:]
        if how == "cut":
            return data[:at] + data[at + span:]
        if how == "insert":
            return data[:at] + bytes([byte]) * span + data[at:]
        return data[:at] + data[at:at + span] * 2 + data[at + span:]

    step = st.tuples(st.sampled_from(["flip", "cut", "insert", "repeat"]), st.integers(0, 10**6),
                     st.integers(1, 255), st.integers(1, 8))
    return st.lists(step, min_size=1, max_size=4).map(
        lambda steps: _apply(valid, steps, edit))


def _apply(data: bytes, steps: list[tuple[str, int, int, int]], edit: Any) -> bytes:
    for how, at, byte, span in steps:
        data = edit(data, how, at, byte, span)
    return data


def json_bytes(value: Any) -> bytes:
    """``value`` as JSON bytes, lone surrogates escaped (as a browser's JSON.stringify
    writes them)."""
    return json.dumps(value, ensure_ascii=True).encode()


class Blob(bytes):
    """Bytes that print short: hypothesis shows failing cases, and a 200 KB repr helps no one."""

    def __repr__(self) -> str:
        return f"Blob({bytes(self[:80])!r}..., {len(self)} bytes)" if len(self) > 200 \
            else f"Blob({bytes(self)!r})"


class LongText(str):
    """A str that prints short (see :class:`Blob`)."""

    def __repr__(self) -> str:
        return f"LongText({str(self[:80])!r}..., {len(self)} characters)" if len(self) > 200 \
            else f"LongText({str(self)!r})"

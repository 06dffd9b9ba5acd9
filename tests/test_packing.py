"""protocol/packing.py: msgpack packing that reuses one Packer per thread, as the wire and
the stores use it: the same bytes as ``msgpack.packb``, clean after a value it refuses, and
no Packer (with its 1 MiB buffer) built per frame or per stored blob."""

from __future__ import annotations

import datetime
import threading
from typing import Any

import msgpack
import pytest

from broker import outputcap
from broker.store import _rows
from protocol.errors import ProtocolError
from protocol.packing import packer
from protocol.wire import Session

VALUES: list[Any] = [
    {}, {"a": 1, "b": [1.5, None, True, "x" * 300]}, b"\x00\xff" * 40, "é" * 70000,
    {"nested": {"deep": [{"k": i} for i in range(50)]}}, 2**63 - 1, -(2**63),
]


def in_thread(fn: Any) -> Any:
    """``fn()`` run on a fresh thread (a thread of its own has no Packer yet)."""
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(fn()))
    worker.start()
    worker.join(10)
    assert out, "the thread failed; pytest's thread hook shows why"
    return out[0]


def test_same_bytes_as_packb() -> None:
    pack = packer(use_bin_type=True)
    for value in VALUES:
        assert pack(value) == msgpack.packb(value, use_bin_type=True)
    stamp = datetime.datetime(2026, 12, 6, 15, 0, tzinfo=datetime.timezone.utc)
    assert _rows.pack({"at": stamp}) == msgpack.packb({"at": stamp}, use_bin_type=True,
                                                      datetime=True)


def test_clean_after_a_value_it_refuses() -> None:
    pack = packer(use_bin_type=True)
    with pytest.raises(OverflowError):
        pack({"ok": "first", "bad": 2**64})
    with pytest.raises(TypeError):
        pack(["half", object()])
    assert pack({"next": 1}) == msgpack.packb({"next": 1}, use_bin_type=True)
    wire = Session(b"k" * 32)
    with pytest.raises(ProtocolError):
        wire.serialize(wire.msg("stream", {"text": "\udcff"}))  # a lone surrogate
    frames = wire.serialize(wire.msg("stream", {"text": "fine"}))
    assert Session(b"k" * 32).deserialize(frames)[1]["content"] == {"text": "fine"}


def test_threads_pack_alone() -> None:
    pack = packer(use_bin_type=True)
    errors: list[str] = []

    def churn(tag: int) -> None:
        for i in range(2000):
            value = {"tag": tag, "i": i, "pad": "x" * (i % 97)}
            if msgpack.unpackb(pack(value)) != value:
                errors.append(f"thread {tag} got another's bytes at {i}")
                return

    workers = [threading.Thread(target=churn, args=(t,)) for t in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert errors == []


def test_no_packer_built_per_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node sends four packed frames per message and the store packs a blob per message:
    building a Packer for each cost the broker more than the packing did."""
    built = [0]

    class Counted(msgpack.Packer):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            built[0] += 1
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(msgpack, "Packer", Counted)
    wire = Session(b"k" * 32)

    def hundred_messages() -> int:
        for i in range(100):
            msg = wire.msg("stream", {"name": "stdout", "text": f"{i}\n"})
            wire.serialize(msg)
            _rows.pack(msg)
            outputcap.message_size(msg)
        return built[0]

    assert in_thread(hundred_messages) <= 3  # one per pack function on this thread

"""What a worker says over its link: each record stamped with the running request's id.

:class:`LinkOutput` is the :class:`~session.backend.Output` a backend writes to. It packs a
record once, replaces one larger than the link allows with a short note on stderr, batches
the records that open and close a request into one write (:meth:`LinkOutput.batch`), and,
once the link fails, stops sending. What the worker says about itself (``worker_log``) goes
the same way (:meth:`LinkOutput.diag`): see :mod:`session.worker`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from protocol import msgtypes as mt
from protocol.link import WorkerLink, encode

from .backend import MimeBundle, Output
from .capture import Capture
from .interrupts import InterruptGuard

_SURROGATE = re.compile("[\ud800-\udfff]")


class LinkOutput(Output):
    """Sends a worker's records over its link, stamped with the current request's id."""

    def __init__(self, link: WorkerLink, guard: InterruptGuard) -> None:
        self.link, self.guard = link, guard
        self.parent = ""
        self.capture: Capture | None = None
        self.broken = False
        #: While warming up: records are built and packed as usual, then dropped.
        self.muted = False

    def send(self, msg_type: str, content: dict[str, Any], metadata: dict[str, Any] | None
             = None, buffers: list[bytes] | None = None) -> None:
        record: dict[str, Any] = {"msg_type": msg_type, "content": content,
                                  "parent": self.parent}
        if metadata:
            record["metadata"] = metadata
        if buffers:
            record["buffers"] = buffers
        if self.broken:
            return
        with self.guard:
            try:
                data = encode(record)
            except UnicodeEncodeError:  # a lone surrogate ("\udcff": a byte os.fsdecode
                record = _repaired(record)  # kept): shown as U+FFFD, the rest kept
                data = self._packed(record)
            except (TypeError, ValueError, OverflowError) as e:
                data = self._note(msg_type, e)
            if len(data) > self.link.max_record:
                data = encode({"msg_type": mt.STREAM, "parent": self.parent, "content": {
                    "name": "stderr",
                    "text": f"[cellbus: a {msg_type} of {len(data)} bytes was dropped: "
                            f"the limit is {self.link.max_record}]\n"}})
            if self.muted:
                return
            try:
                self.link.send_encoded(data)
            except OSError as e:
                self.broken = True
                self.diag(f"link to the overseer failed: {e}")

    def _packed(self, record: dict[str, Any]) -> bytes:
        try:
            return encode(record)
        except (TypeError, ValueError, OverflowError) as e:
            return self._note(record["msg_type"], e)

    def _note(self, msg_type: str, error: Exception) -> bytes:
        """In place of a record that cannot be packed (a display of an object that is not
        JSON-like): a note on the run's stderr, so the user knows something is missing
        (before, only the device's log said so), and the device's log line."""
        self.diag(f"dropped a {msg_type} record that cannot be packed: {error}")
        return encode({"msg_type": mt.STREAM, "parent": self.parent, "content": {
            "name": "stderr", "text": f"[cellbus: a {msg_type} was dropped: it cannot be "
                                      f"sent ({type(error).__name__}: {error})]\n"}})

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Records sent inside reach the overseer in one write when it ends (see
        :meth:`WorkerLink.hold`): for the records that open and close a request."""
        held = self.link.hold()
        try:
            yield
        finally:
            if held:
                with self.guard:
                    try:
                        self.link.release()
                    except OSError as e:
                        self.broken = True
                        self.diag(f"link to the overseer failed: {e}")

    def diag(self, message: str) -> None:
        """Say something about the worker itself in the device's log (see the module doc)."""
        self.send(mt.WORKER_LOG, {"text": message})

    def stream(self, name: str, text: str) -> None:
        if self.capture is not None:
            self.capture.coalescer.write(name, text)
        else:
            self.send(mt.STREAM, {"name": name, "text": text})

    def send_stream(self, name: str, text: str) -> None:
        """The coalescer's sink."""
        self.send(mt.STREAM, {"name": name, "text": text})

    def display(self, data: MimeBundle, metadata: dict[str, Any] | None = None, *,
                buffers: list[bytes] | None = None,
                transient: dict[str, Any] | None = None) -> None:
        self.flush()
        self.send(mt.DISPLAY_DATA, {"data": data, "metadata": metadata or {},
                                    "transient": transient or {}}, buffers=buffers)

    def flush(self, *, run_ended: bool = False) -> None:
        if self.capture is not None:
            self.capture.flush(run_ended=run_ended)

    def message(self, msg_type: str, content: dict[str, Any],
                metadata: dict[str, Any] | None = None, *,
                buffers: list[bytes] | None = None) -> None:
        self.flush()
        self.send(msg_type, content, metadata, buffers)


def _repaired(value: Any) -> Any:
    """``value`` with every string's lone surrogates replaced by U+FFFD (the bytes
    ``surrogateescape`` stood for are not UTF-8, and msgpack cannot send them)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_repaired(k): _repaired(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_repaired(v) for v in value]
    return value

"""A hostile session backend: it writes forged and malformed records to its worker link.

Selected with ``bin/cellbus device --backend forger:ForgerBackend`` (``tests/`` on the
device's ``PYTHONPATH``). A backend runs inside the worker process, so it can do anything
session code can: here it writes to the worker's end of the link directly, records of any
shape and raw bytes, as a compromised interpreter would.

What a cell's code asks for:

* ``forge {json}`` with ``other_session``, ``other_request``, ``other_user``,
  ``other_worksheet``, ``other_cell`` and ``mark``: sends every forgery in :func:`forgeries`
  (each carries ``mark`` + ``-forged-N`` in its text), then prints ``mark-legit`` the normal
  way. The result is ``{"sent": N}``: how many records the device should have rejected.
* ``flood N``: N device control messages, as fast as the link takes them.
* ``oversize``: a length prefix past the link's limit (the stream cannot be resynced).
* ``sleep S``: sleeps S seconds, then prints ``slept``: a request that stays running.
* ``bigstatus N``: a well-formed ``status`` record carrying N bytes of padding (output that
  is no stream or display, which the device must count all the same).
* ``unjsonable``: output holding bytes and a non-string key, which msgpack carries but a
  JSON bus cannot; then prints ``after``.
* anything else: printed back (so the backend also serves a well-behaved session).
"""

from __future__ import annotations

import json
import struct
import threading
import time
from typing import Any

import msgpack

from protocol.link import WorkerLink, encode
from session.backend import ExecuteOutcome, SessionBackend

LEN = struct.Struct("!I")

#: Control messages of the bus that a worker must never be able to send.
CONTROL_TYPES = ["device_register", "device_heartbeat", "session_started", "session_closed",
                 "broker_heartbeat", "seq_beacon", "execute_request", "interrupt_request",
                 "shutdown_request", "restart_request", "cell_update_request", "file_request",
                 "broker_status_request", "device_drain", "work_assign", "auth_request"]


def forgeries(spec: dict[str, Any], running: str) -> list[dict[str, Any] | bytes]:
    """Records (dicts) and raw byte strings, each of which the device must reject."""
    other, request, mark = spec["other_session"], spec["other_request"], spec["mark"]
    address = {"user": spec["other_user"], "worksheet": spec["other_worksheet"],
               "cell_id": spec["other_cell"], "session": other, "seq": 1}
    counter = iter(range(1, 1000))

    def text(what: str = "stdout") -> dict[str, Any]:
        return {"name": what, "text": f"{mark}-forged-{next(counter)}\n"}

    header = {"msg_id": "f" * 32, "msg_type": "stream", "session": other, "username": "x",
              "date": "2020-01-01T00:00:00Z", "version": "5.4"}
    out: list[dict[str, Any] | bytes] = [
        # Identity: another session's request, session id, header, parent or routing facts.
        {"msg_type": "stream", "content": text(), "parent": request},
        {"msg_type": "stream", "content": text(), "parent": running, "session": other},
        {"msg_type": "stream", "content": text(), "parent": running, "header": header},
        {"msg_type": "stream", "content": text(), "parent": running,
         "parent_header": {**header, "msg_id": request}},
        {"msg_type": "stream", "content": text(), "parent": running,
         "metadata": {"cellbus": address}},
        {"msg_type": "stream", "content": text(), "parent": running, "metadata": [address]},
        {"msg_type": "display_data", "content": {"data": {"text/plain": text()["text"]},
                                                 "metadata": {}}, "parent": request},
        {"msg_type": "execute_reply", "content": {"status": "ok", "execution_count": 1},
         "parent": request},
        {"msg_type": "status", "content": {"execution_state": "idle"}, "parent": request},
        {"msg_type": "error", "content": {"ename": "Forged", "evalue": text()["text"],
                                          "traceback": []}, "parent": request},
    ]
    # Control: every bus message type that is not a session's output.
    for kind in CONTROL_TYPES:
        out.append({"msg_type": kind, "parent": running, "content": {
            "device": "forged-device", "capacity": 1000, "load": 0, "session": other,
            "sessions": {other: 10**6}, "code": f"print({text()['text']!r})",
            "reason": text()["text"]}})
    # Malformed: undecodable bodies, wrong shapes, wrong field types, too deep.
    for body in (b"\xc1\xc1", msgpack.packb(7), msgpack.packb({"content": text()}),
                 msgpack.packb({"msg_type": 5}), msgpack.packb([1, 2, 3]),
                 b"\x81\xa8msg_type\xa3\xff\xfe\xfd",
                 msgpack.packb({"msg_type": "stream", "content": {"x": _deep(200)}})):
        out.append(LEN.pack(len(body)) + body)
    out += [
        {"msg_type": "stream", "content": [text()], "parent": running},
        {"msg_type": "display_data", "content": {"data": {}}, "buffers": "not bytes",
         "parent": running},
        {"msg_type": "display_data", "content": {"data": {}}, "buffers": [1, 2],
         "parent": running},
    ]
    return out


def _deep(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


class ForgerBackend(SessionBackend):
    """Forges on request; otherwise prints its input back."""

    @property
    def link(self) -> WorkerLink:
        link = getattr(self.out, "link", None)
        if not isinstance(link, WorkerLink):
            raise RuntimeError("ForgerBackend runs only in a cellbus worker")
        return link

    def write(self, item: dict[str, Any] | bytes) -> None:
        """One record, or raw bytes, straight onto the link (under its send lock)."""
        data = item if isinstance(item, bytes) else encode(item)
        lock: threading.Lock = self.link._send_lock
        with lock:
            self.link.sock.sendall(data)

    def execute(self, code: str, *, silent: bool = False,
                store_history: bool = True) -> ExecuteOutcome:
        self.out.flush()
        running = getattr(self.out, "parent", "")
        if code.startswith("forge "):
            items = forgeries(json.loads(code[len("forge "):]), running)
            for item in items:
                self.write(item)
            spec = json.loads(code[len("forge "):])
            self.out.stream("stdout", f"{spec['mark']}-legit\n")
            return ExecuteOutcome(result={"text/plain": json.dumps({"sent": len(items)})})
        if code.startswith("flood "):
            n = int(code.split()[1])
            for i in range(n):
                self.write({"msg_type": "device_heartbeat", "parent": running,
                            "content": {"device": "forged-device", "load": i}})
            return ExecuteOutcome(result={"text/plain": json.dumps({"sent": n})})
        if code == "oversize":
            self.write(LEN.pack(2**32 - 1) + b"\x80")
            return ExecuteOutcome()
        if code.startswith("bigstatus "):
            self.write({"msg_type": "status", "parent": running, "content": {
                "execution_state": "busy", "padding": "p" * int(code.split()[1])}})
            return ExecuteOutcome()
        if code == "unjsonable":
            self.write({"msg_type": "display_data", "parent": running, "content": {
                "data": {"text/plain": b"raw bytes"}, "metadata": {}}})
            self.write({"msg_type": "display_data", "parent": running, "content": {
                "data": {"text/plain": "x"}, "metadata": {b"key": 1}}})
            self.out.stream("stdout", "after\n")
            return ExecuteOutcome()
        if code.startswith("sleep "):
            time.sleep(float(code.split()[1]))
            self.out.stream("stdout", "slept\n")
            return ExecuteOutcome()
        self.out.stream("stdout", code + "\n")
        return ExecuteOutcome()

    def kernel_info(self) -> dict[str, Any]:
        return {"language_info": {"name": "forger", "version": "1"}, "banner": "forger"}

"""The worker's request loop: one request from the link at a time, answered by the backend.

Framing lives here, not in backends: for each ``execute_request`` the worker sends ``status``
busy, ``execute_input``, whatever the backend emits, ``execute_result`` or ``error``,
``execute_reply`` and ``status`` idle, all with ``parent`` set to the request's ``msg_id``.
Shaped like the Majordomo worker's ``recv(reply)``: :meth:`Worker.run` reads a request,
answers it in full, and reads the next, until the link closes or ``shutdown_request``.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable
from typing import Any

from protocol import msgtypes as mt
from protocol.asked import from_content
from protocol.counts import counted
from protocol.errors import ProtocolError
from protocol.link import WorkerLink
from protocol.queries import unanswered
from protocol.version import VERSION

from .backend import ExecuteOutcome, SessionBackend, expression_error, traceback_entries
from .children import boot_ticks, end_started_since, hit_process_limit, reap_strays
from .interrupts import InterruptGuard
from .linkoutput import LinkOutput
from .stdin import Asker
from .tighter import applied
from .usage import Meter


class Worker:
    """Answers the requests of one link with one backend."""

    def __init__(self, link: WorkerLink, out: LinkOutput, guard: InterruptGuard,
                 backend: SessionBackend, asker: Asker | None = None) -> None:
        self.link, self.out, self.guard, self.backend = link, out, guard, backend
        self.asker = asker  #: input() of each run is served only while the run lasts
        self.execution_count = 0
        #: The worker's children when the last cell ended (see :meth:`execute`).
        self.kept: set[int] = set()
        #: Whether the running request's client answers prompts: ``allow_stdin`` of an
        #: execute_request (absent: true), every other request's always.
        self.allow_stdin = True

    def warm_up(self) -> None:
        """Take one cell's paths (records, capture, backend) with output muted before the
        first request: see :meth:`SessionBackend.warm_up`. About 300 pages of the template
        get copied here, in the pool, instead of in the user's first cell (1-2 ms)."""
        out = self.out
        out.muted = True
        try:
            with out.batch():
                out.send(mt.STATUS, {"execution_state": "busy"})
            self.backend.warm_up()
            out.flush()  # the flusher thread's text too: it goes nowhere
            with out.batch():
                out.send(mt.EXECUTE_REPLY, {"status": "ok", "execution_count": 0,
                                            "user_expressions": {}, "payload": []})
        except Exception as e:  # noqa: BLE001 - a cold first cell is no reason to fail
            out.muted = False
            out.diag(f"warm-up failed: {e!r}")
        finally:
            out.muted = False

    def run(self) -> int:
        """Serve until EOF (0), ``shutdown_request`` (0) or a broken link (1)."""
        self.warm_up()
        while not self.out.broken:
            try:
                request = self.link.recv()
            except ProtocolError as e:
                self.out.diag(f"bad record from the overseer: {e}")
                return 1
            except OSError:
                return 1
            if request is None:
                return 0
            msg_type = request.get("msg_type")
            msg_id = request.get("msg_id")
            content = request.get("content")
            self.out.parent = msg_id if isinstance(msg_id, str) else ""
            content = content if isinstance(content, dict) else {}
            if msg_type in (mt.EXECUTE_REQUEST, mt.INTERACT_REQUEST):
                if msg_type == mt.EXECUTE_REQUEST:
                    self.execute(content)
                else:
                    self.interact(content)
                self.kept = reap_strays()
            elif msg_type == mt.KERNEL_INFO_REQUEST:  # a client's, framed as a query is
                with self.out.batch():
                    self.out.send(mt.STATUS, {"execution_state": "busy"})
                    self.out.send(mt.KERNEL_INFO_REPLY, self.kernel_info())
                    self.out.send(mt.STATUS, {"execution_state": "idle"})
            elif msg_type in mt.COMM_REQUEST_TYPES:
                buffers = request.get("buffers")  # a widget's bytes, as the client sent them
                self.comm(msg_type, content, [b for b in buffers if isinstance(b, bytes)]
                          if isinstance(buffers, list) else [])
            elif msg_type in mt.QUERY_REQUEST_TYPES:
                self.query(msg_type, content)
            elif msg_type == mt.SHUTDOWN_REQUEST:
                try:
                    self.backend.shutdown()
                except Exception as e:
                    self.out.diag(f"backend shutdown failed: {e!r}")
                self.out.flush()
                self.out.send(mt.SHUTDOWN_REPLY, {"status": "ok", "restart": False})
                return 0
            # Anything else is ignored: the overseer only sends what it validated.
        return 1

    def kernel_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"status": "ok", "protocol_version": mt.PROTOCOL_VERSION,
                                "implementation": "cellbus",
                                "implementation_version": VERSION, "banner": ""}
        info.update(self.backend.kernel_info())
        return info

    def execute(self, content: dict[str, Any]) -> None:
        code = content.get("code")
        code = code if isinstance(code, str) else ""
        silent = content.get("silent") is True
        store_history = (content.get("store_history", True) is not False and not silent
                         and counted(code))  # blank code takes no number (protocol.counts)
        self.guard.start_request()
        out = self.out
        with out.batch():
            out.send(mt.STATUS, {"execution_state": "busy"})
            if store_history:
                self.execution_count += 1
            count = self.execution_count
            if not silent:
                out.send(mt.EXECUTE_INPUT, {"code": code, "execution_count": count})
        started = boot_ticks()
        meter = Meter()
        meter.start()
        self.backend.execution_count = count
        self.allow_stdin = self.backend.allow_stdin = content.get("allow_stdin") is not False
        asked = content.get("user_expressions")
        expressions: dict[str, Any] = asked if isinstance(asked, dict) else {}
        self.backend.user_expressions = {name: text for name, text in expressions.items()
                                         if isinstance(name, str) and isinstance(text, str)}
        with applied(from_content(content)):
            outcome = self._guarded(
                lambda: self.backend.execute(code, silent=silent, store_history=store_history))
            values = self._expressions(expressions, outcome)
        if outcome.status == "error" and hit_process_limit(outcome.ename, outcome.evalue):
            # Before the reply: the next cell may need those process slots.
            ended = end_started_since(started, keep=self.kept)
            if ended:
                out.flush()
                out.send(mt.STREAM, {"name": "stderr", "text": (
                    f"cellbus: stopped the {ended} processes this cell started: it hit the "
                    "session's process limit\n")})
        self.allow_stdin = True
        with out.batch():  # the end: last output, result, reply and idle in one write
            self._finish(outcome, count, silent, meter, values)

    def _expressions(self, expressions: dict[str, Any], outcome: ExecuteOutcome
                     ) -> dict[str, Any]:
        """The reply's ``user_expressions``: none after an error (as ipykernel), those the
        backend evaluated with the code, else each evaluated now, after the code, in the
        session's namespace (:meth:`SessionBackend.evaluate`), with interrupts armed and
        prompts served as for the code. An expression that is no string gets its error."""
        if outcome.status != "ok" or not expressions:
            return {}
        if outcome.user_expressions is not None:
            return dict(outcome.user_expressions)
        values: dict[str, Any] = {}
        for name, text in expressions.items():
            if not isinstance(name, str) or not isinstance(text, str):
                why = f"user expression {name!r} is not a string"
                values[str(name)] = expression_error("TypeError", why, [f"TypeError: {why}"])
        asked = self.backend.user_expressions
        found: list[dict[str, Any]] = []

        def evaluate() -> ExecuteOutcome:
            found.append(self.backend.evaluate(asked))
            return ExecuteOutcome()

        failed = self._guarded(evaluate) if asked else ExecuteOutcome()
        got = found[0] if found and isinstance(found[0], dict) else {}
        for name in asked:
            value = got.get(name)
            values[name] = value if isinstance(value, dict) else expression_error(
                failed.ename or "RuntimeError", failed.evalue or "no value was returned",
                list(failed.traceback))
        return values

    def interact(self, content: dict[str, Any]) -> None:
        """Re-run an interact: its output goes out as usual; ``interact_reply`` ends it."""
        interact_id, values, state = (content.get("interact_id"), content.get("values"),
                                      content.get("state"))
        self.guard.start_request()
        self.out.send(mt.STATUS, {"execution_state": "busy"})
        if not isinstance(interact_id, str) or not isinstance(values, dict) or not isinstance(
                state, int) or isinstance(state, bool):
            outcome = ExecuteOutcome.failed("ValueError", "interact_request needs interact_id, "
                                            "values and an integer state", [])
        else:
            outcome = self._guarded(lambda: self.backend.interact(interact_id, values, state))
        with self.out.batch():  # the end in one write, as for execute
            self.out.flush()
            reply: dict[str, Any] = {"status": outcome.status, "interact_id": interact_id,
                                     "state": state, "ignored": outcome.ignored}
            if outcome.status == "error":
                error = {"ename": outcome.ename, "evalue": outcome.evalue, "traceback":
                         list(outcome.traceback) or [f"{outcome.ename}: {outcome.evalue}"]}
                self.out.send(mt.ERROR, error)
                reply.update(error)
            self.out.send(mt.INTERACT_REPLY, reply)
            self.out.send(mt.STATUS, {"execution_state": "idle"})

    def comm(self, msg_type: str, content: dict[str, Any], buffers: list[bytes]) -> None:
        """A client's comm message (and its buffers), for the backend
        (:meth:`SessionBackend.comm`): between busy and idle, which ends it, as a Jupyter
        kernel frames every shell message."""
        self.guard.start_request()
        self.out.send(mt.STATUS, {"execution_state": "busy"})
        outcome = self._guarded(lambda: self.backend.comm(msg_type, content, buffers))
        with self.out.batch():
            self.out.flush()
            if outcome.status == "error":
                self.out.diag(f"{msg_type} failed: {outcome.ename}: {outcome.evalue}")
            self.out.send(mt.STATUS, {"execution_state": "idle"})

    def query(self, msg_type: str, content: dict[str, Any]) -> None:
        """A client's question about code, for the backend (:meth:`SessionBackend.query`),
        framed as :meth:`comm` is; a backend that fails gives the reply of none."""
        self.guard.start_request()
        self.out.send(mt.STATUS, {"execution_state": "busy"})
        replies: list[Any] = []

        def ask() -> ExecuteOutcome:
            replies.append(self.backend.query(msg_type, content))
            return ExecuteOutcome()

        outcome = self._guarded(ask)
        reply = replies[0] if replies and isinstance(replies[0], dict) else None
        with self.out.batch():
            self.out.flush()
            if reply is None:
                self.out.diag(f"{msg_type} failed: {outcome.ename}: {outcome.evalue}"
                              if outcome.status == "error" else f"{msg_type}: no reply")
                reply = unanswered(msg_type, content)
            self.out.send(mt.QUERY_REPLIES[msg_type], reply)
            self.out.send(mt.STATUS, {"execution_state": "idle"})

    def _guarded(self, call: Callable[[], ExecuteOutcome]) -> ExecuteOutcome:
        """Run a backend call with interrupts armed; anything escaping becomes an error.
        Prompts are answered only during the call: none is left waiting at the reply."""
        serving = self.asker.serving(self.out.parent, self.allow_stdin) if self.asker \
            else contextlib.nullcontext()
        with serving:
            return self._call(call)

    def _call(self, call: Callable[[], ExecuteOutcome]) -> ExecuteOutcome:
        try:
            self.guard.arm()
            try:
                return call()
            finally:
                self.guard.disarm()
        except BaseException as e:  # noqa: BLE001 - an interrupt or a backend bug
            self.guard.disarm()
            if not isinstance(e, KeyboardInterrupt):
                self.out.diag(f"backend {type(self.backend).__name__} raised {e!r}")
            return ExecuteOutcome.failed(type(e).__name__, str(e), traceback_entries(
                traceback.format_exception_only(type(e), e)))

    def _finish(self, outcome: ExecuteOutcome, count: int, silent: bool, meter: Meter,
                values: dict[str, Any]) -> None:
        out = self.out
        out.flush(run_ended=True)  # all stream text, subprocess output too, before the end
        usage = meter.usage()
        reply: dict[str, Any] = {"status": outcome.status, "execution_count": count,
                                 "user_expressions": values, "payload": []}
        if outcome.status == "error":
            error = {"ename": outcome.ename, "evalue": outcome.evalue,
                     "traceback": list(outcome.traceback)}
            if not silent:
                out.send(mt.ERROR, error)
            reply.update(error)
        elif outcome.result is not None and not silent:
            out.send(mt.EXECUTE_RESULT, {"execution_count": count, "data": outcome.result,
                                         "metadata": outcome.result_metadata})
        out.send(mt.EXECUTE_REPLY, reply, {"usage": usage})
        out.send(mt.STATUS, {"execution_state": "idle"})

"""The built-in backend: runs Python code in one persistent ``__main__`` namespace.

Like IPython, a cell is compiled statement by statement: everything but a final expression
with ``exec``, the final expression with ``eval`` so its value becomes the execution result
(and ``_``). Each cell gets a pseudo-filename registered in ``linecache`` (``<cell-N>`` for
execution_count N: :meth:`PythonBackend.cell_name`), and tracebacks show only frames from
the first cell frame on. Every execution runs inside a block
of the block API. Touches ``sys.modules["__main__"]`` (the session's namespace module),
``linecache`` and the display hook of :mod:`session.display`.
"""

from __future__ import annotations

import __future__
import ast
import builtins
import linecache
import os
import platform
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any

from protocol import msgtypes as mt
from protocol.version import VERSION

from . import introspect, ipydisplay
from .backend import (BackendConfig, ExecuteOutcome, Output, SessionBackend, expression_error,
                      traceback_entries)
from .blocks import BlockApi
from .controls import CONTROLS
from .history import History
from .interact import Interacts
from .display import close_figure, display_hook, is_figure, mimebundle, \
    quiet_matplotlib_setup, set_display_hook, show_open_figures

#: Compiler flags of every ``from __future__ import`` feature (they persist across cells).
_FUTURE_FLAGS = 0
for _name in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _name).compiler_flag
CELL_PREFIX = "<cell-"
#: The name of the warm-up cell's code (:meth:`PythonBackend.warm_up`).
WARM_UP = f"{CELL_PREFIX}warm-up>"


class PythonBackend(SessionBackend):
    """Executes Python source in the worker's own interpreter."""

    display_name = "Python 3 (cellbus)"
    language = "python"

    def __init__(self, out: Output, config: BackendConfig) -> None:
        super().__init__(out, config)
        self.blocks = BlockApi(out, config.workdir, max_file_size=config.max_file_size,
                               before_close=show_open_figures)
        self.module = types.ModuleType("__main__", None)
        self.namespace: dict[str, Any] = self.module.__dict__
        self.interacts = Interacts(out, self._run_call)
        self.namespace.update(__builtins__=builtins, display=self.display,
                              block_api=self.blocks, interact=self.interacts.decorator,
                              **CONTROLS)
        # pickle and friends look user classes up in sys.modules["__main__"].
        sys.modules["__main__"] = self.module
        self._unstored = (0, 0)  # (execution_count, executes since it that stored no history)
        self.history = History()  # what history_request is answered with
        self._flags = 0
        quiet_matplotlib_setup()
        set_display_hook(self.display)
        ipydisplay.install(display_hook, self._clear_output)  # IPython's, as Jupyter's

    # --- what the namespace sees -----------------------------------------------------------

    def display(self, *objs: Any, display_id: str | None = None, update: bool = False) -> None:
        """``display(obj, ...)``: start a new block, then show each object; with a
        ``display_id`` (IPython's display, :mod:`session.ipydisplay`) as ipykernel shows it
        (``transient.display_id``), ``update`` as an ``update_display_data`` of that id."""
        if not update:
            self.blocks.new_block()
        transient = {"display_id": display_id} if display_id else None
        for obj in objs:
            data, metadata = mimebundle(obj)
            if is_figure(obj):
                close_figure(obj)
            if update and transient:
                self.out.message(mt.UPDATE_DISPLAY_DATA, {"data": data, "metadata": metadata,
                                                          "transient": transient})
            else:
                self.out.display(data, metadata, transient=transient)

    def _clear_output(self, wait: bool) -> None:
        """IPython's ``clear_output``: the cell's output so far goes (with ``wait``, when
        the next output comes), as in Jupyter."""
        self.out.message("clear_output", {"wait": wait})

    # --- SessionBackend ------------------------------------------------------------------

    def kernel_info(self) -> dict[str, Any]:
        """What Jupyter clients take from it (the channels' ``kernel_info_reply``): the
        language_info fields ipykernel gives too, which JupyterLab highlights by and
        nbconvert exports a notebook's code by."""
        return {
            "implementation": "cellbus",
            "implementation_version": VERSION,
            "language_info": {
                "name": "python",
                "version": platform.python_version(),
                "mimetype": "text/x-python",
                "file_extension": ".py",
                "codemirror_mode": {"name": "ipython", "version": 3},
                "pygments_lexer": "ipython3",
                "nbconvert_exporter": "python",
            },
            "banner": f"cellbus session: Python {sys.version.split()[0]}",
        }

    def cell_name(self, store_history: bool) -> str:
        """The pseudo-filename of the next cell's code: ``<cell-N>`` for one that stores
        history, N being its execution_count (as IPython's ``<ipython-input-N-...>``), so a
        traceback names the cell its client numbered; ``<cell-N.K>`` for the K-th since
        then that stores none (silent ones too), which never takes a counted one's name, so
        the code of every cell stays in ``linecache`` for the tracebacks of later cells."""
        count = self.execution_count
        if store_history:
            return f"{CELL_PREFIX}{count}>"
        after, unstored = self._unstored
        self._unstored = (count, unstored + 1 if after == count else 1)
        return f"{CELL_PREFIX}{count}.{self._unstored[1]}>"

    def execute(self, code: str, *, silent: bool = False,
                store_history: bool = True) -> ExecuteOutcome:
        outcome = self._execute(code, self.cell_name(store_history))
        if store_history:
            result = outcome.result.get("text/plain") if outcome.result else None
            self.history.add(self.execution_count, code,
                             result if isinstance(result, str) else None)
        return outcome

    def _execute(self, code: str, filename: str) -> ExecuteOutcome:
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        outcome = ExecuteOutcome()
        try:
            self.blocks.new_block()
            try:
                parts = self._compile(code, filename)
            except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError) as e:
                return _error_outcome(e, only_message=True)
            value = self._run(*parts)
            if value is not None:
                self.namespace["_"] = value
                data, metadata = mimebundle(value)
                if is_figure(value):
                    close_figure(value)
                outcome = ExecuteOutcome(result=data, result_metadata=metadata)
        except BaseException as e:  # noqa: BLE001 - user code may raise anything
            outcome = _error_outcome(e)
        finally:
            try:
                self.blocks.close()
            except BaseException as e:  # noqa: BLE001 - e.g. a figure that cannot be drawn
                if outcome.status == "ok":
                    outcome = _error_outcome(e)
        return outcome

    def evaluate(self, expressions: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Each expression evaluated in the session's namespace, as ipykernel does: its
        value's mimebundle, or the error it raised (a syntax error too); ``_`` and the
        execution count stay as the code left them."""
        values: dict[str, dict[str, Any]] = {}
        for name, text in expressions.items():
            filename = f"{CELL_PREFIX}{self.execution_count}:{name}>"
            try:
                code = compile(text, filename, "eval", flags=self._flags, dont_inherit=True)
                data, metadata = mimebundle(eval(code, self.namespace))
                values[name] = {"status": "ok", "data": data, "metadata": metadata}
            except KeyboardInterrupt:
                raise  # the run was interrupted: the worker ends it
            except BaseException as e:  # noqa: BLE001 - user code may raise anything
                failed = _error_outcome(e, only_message=isinstance(e, SyntaxError))
                values[name] = expression_error(failed.ename, failed.evalue, failed.traceback)
        return values

    def interact(self, interact_id: str, values: dict[str, Any], state: int) -> ExecuteOutcome:
        return self.interacts.request(interact_id, values, state)

    def query(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """Completions, help and completeness from the namespace (session/introspect.py);
        the cells that stored history (session/history.py)."""
        if msg_type == "complete_request":
            return introspect.complete(self.namespace, content)
        if msg_type == "inspect_request":
            return introspect.inspect_object(self.namespace, content)
        if msg_type == "is_complete_request":
            return introspect.is_complete(content)
        if msg_type == "history_request":
            return self.history.reply(content)
        return super().query(msg_type, content)

    def warm_up(self) -> None:
        """One small cell (statement, print, final value), named apart from every cell of
        the session, then its traces undone: its ``linecache`` entry and ``_``."""
        try:
            self._execute("print(2)\n2", WARM_UP)
        finally:
            linecache.cache.pop(WARM_UP, None)
            self.namespace.pop("_", None)

    def _run_call(self, call: Callable[[], Any]) -> ExecuteOutcome:
        """Run ``call`` in a block of its own (files, figures), errors as an outcome."""
        outcome = ExecuteOutcome()
        try:
            self.blocks.new_block()
            call()
        except BaseException as e:  # noqa: BLE001 - user code may raise anything
            if isinstance(e, KeyboardInterrupt):
                raise
            outcome = _error_outcome(e)
        finally:
            try:
                self.blocks.close()
            except Exception as e:  # noqa: BLE001
                if outcome.status == "ok":
                    outcome = _error_outcome(e)
        return outcome

    # --- compiling and running -------------------------------------------------------------

    def _compile(self, code: str, filename: str) -> tuple[types.CodeType | None,
                                                          types.CodeType | None]:
        """``(statements, final expression)``, either may be ``None``."""
        flags = self._flags | ast.PyCF_ONLY_AST
        tree = compile(code, filename, "exec", flags=flags, dont_inherit=True)
        body = tree.body
        last: ast.Expression | None = None
        if body and isinstance(body[-1], ast.Expr):
            last = ast.Expression(body=body[-1].value)
            body = body[:-1]
        head = None
        if body:
            head = compile(ast.Module(body=body, type_ignores=[]), filename, "exec",
                           flags=self._flags, dont_inherit=True)
            self._flags |= head.co_flags & _FUTURE_FLAGS
        tail = None
        if last is not None:
            tail = compile(last, filename, "eval", flags=self._flags, dont_inherit=True)
        return head, tail

    def _run(self, head: types.CodeType | None, tail: types.CodeType | None) -> Any:
        if head is not None:
            exec(head, self.namespace)
        if tail is not None:
            return eval(tail, self.namespace)
        return None


#: Where this package's files are: their frames are ours, not the user's.
_OWN_FILES = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _user_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """``tb`` from the first cell frame on, without the frames of this package it ends in
    (a ``KeyboardInterrupt`` is raised by :mod:`session.interrupts`' signal handler, a write
    to stdout ends in :mod:`session.capture`): the user's code is the last frame shown."""
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith(CELL_PREFIX):
        tb = tb.tb_next
    last = tb
    walk = tb
    while walk is not None:
        if not walk.tb_frame.f_code.co_filename.startswith(_OWN_FILES):
            last = walk
        walk = walk.tb_next
    if last is not None:
        last.tb_next = None
    return tb


def _error_outcome(e: BaseException, only_message: bool = False) -> ExecuteOutcome:
    """The ``error`` outcome for ``e``, its traceback cut to the user's frames."""
    tb = _user_traceback(e.__traceback__)
    if only_message or tb is None:
        lines = traceback.format_exception_only(type(e), e)
    else:
        lines = traceback.format_exception(type(e), e.with_traceback(tb), tb)
    return ExecuteOutcome.failed(type(e).__name__, _safe_str(e), traceback_entries(lines))


def _safe_str(e: BaseException) -> str:
    try:
        return str(e)
    except Exception:
        return f"<unprintable {type(e).__name__}>"

"""The session-backend interface: what runs code for a worker, and how it reports output.

A worker (``session.worker``) owns the link, the message framing (``status`` busy/idle,
``execute_input``, ``execute_result``/``error``, ``execute_reply``), the execution count and
the capture of stdout/stderr. A backend only *executes* and *emits*: it is given an
:class:`Output` and a :class:`BackendConfig`, and for each request returns an
:class:`ExecuteOutcome`. To plug in another language or interpreter, subclass
:class:`SessionBackend` and start the worker with ``--backend package.module:Class``.

Anything the backend's code writes to ``sys.stdout``/``sys.stderr`` or to descriptors 1 and 2
is already captured as ``stream`` output; :meth:`Output.stream` is for text a backend
produces itself. This module touches nothing; it only defines the contract.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Literal

from protocol.queries import unanswered

#: Largest file (bytes) whose content is sent when the block API announces it.
DEFAULT_MAX_FILE_SIZE = 8 * 1024 * 1024

MimeBundle = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class BackendConfig:
    """What a backend is told when it starts."""

    workdir: str
    max_file_size: int = DEFAULT_MAX_FILE_SIZE


@dataclasses.dataclass
class ExecuteOutcome:
    """The end of one execution: ``ok`` with an optional result, or ``error``.

    ``result`` is the mimebundle of the value to show as ``execute_result`` (``None``: no
    result). ``traceback`` is a list of already formatted lines, as Jupyter sends them.
    """

    status: Literal["ok", "error"] = "ok"
    result: MimeBundle | None = None
    result_metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    ename: str = ""
    evalue: str = ""
    traceback: list[str] = dataclasses.field(default_factory=list)
    #: An interact_request that was not run because a newer one already was.
    ignored: bool = False
    #: The ``user_expressions`` of the reply, when the backend evaluated them itself (a
    #: Jupyter kernel does, with the code); None: the worker asks :meth:`SessionBackend.
    #: evaluate` for them after an ``ok`` run.
    user_expressions: dict[str, Any] | None = None

    @classmethod
    def failed(cls, ename: str, evalue: str, traceback: list[str]) -> "ExecuteOutcome":
        return cls(status="error", ename=ename, evalue=evalue, traceback=traceback)


def traceback_entries(lines: list[str]) -> list[str]:
    """Python's formatted traceback (:func:`traceback.format_exception`, each entry ending
    with a newline) as Jupyter's ``traceback`` field: Jupyter clients join the entries with
    newlines (JupyterLab showed a blank line after every frame), so none ends with one, as
    ipykernel sends them."""
    return [line.removesuffix("\n") for line in lines]


def expression_error(ename: str, evalue: str, traceback: list[str]) -> dict[str, Any]:
    """One user expression's value when evaluating it failed (the messaging spec's error
    shape)."""
    return {"status": "error", "ename": ename, "evalue": evalue, "traceback": traceback}


class Output(abc.ABC):
    """Where a backend sends output while it runs. Every method may be called from any
    thread; output is delivered in call order, and pending stream text always goes out
    before a display."""

    @abc.abstractmethod
    def stream(self, name: Literal["stdout", "stderr"], text: str) -> None:
        """Append ``text`` to a stream (coalesced with nearby writes)."""

    @abc.abstractmethod
    def display(self, data: MimeBundle, metadata: dict[str, Any] | None = None, *,
                buffers: list[bytes] | None = None,
                transient: dict[str, Any] | None = None) -> None:
        """Send one ``display_data`` (after flushing pending stream text)."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Send all pending stream text now."""

    @abc.abstractmethod
    def message(self, msg_type: str, content: dict[str, Any],
                metadata: dict[str, Any] | None = None, *,
                buffers: list[bytes] | None = None) -> None:
        """Send another kind of output message (``interact_start``, ``clear_output``, ...);
        ``metadata`` is the message's (a widget's comm_open names its protocol version),
        ``buffers`` its bytes (a kernel comm's)."""


class SessionBackend(abc.ABC):
    """Runs code for one session. Subclasses implement :meth:`execute` and
    :meth:`kernel_info`; :meth:`shutdown` is optional.

    The worker calls every method from its main thread, one request at a time. An interrupt
    arrives as ``KeyboardInterrupt`` raised inside :meth:`execute` (the worker turns one that
    escapes into an ``error`` outcome).
    """

    #: What ``GET /kernels`` shows for this backend (default: its kernel name).
    display_name: str = ""
    #: The language its cells are in (``language`` of ``GET /kernels``).
    language: str = ""
    #: The ``execution_count`` of the execute being run, set by the worker before each
    #: :meth:`execute` (it advances only for those that store history): a backend may name
    #: a cell's code by it, as IPython names ``<ipython-input-N-...>``.
    execution_count: int = 0

    def __init__(self, out: Output, config: BackendConfig) -> None:
        self.out = out
        self.config = config
        #: The ``user_expressions`` of the execute being run (name -> expression), set by
        #: the worker before each :meth:`execute`: a backend that evaluates them with the
        #: code (a Jupyter kernel) returns their values in
        #: :attr:`ExecuteOutcome.user_expressions`.
        self.user_expressions: dict[str, str] = {}
        #: Whether the client of the execute being run answers prompts (its
        #: ``allow_stdin``), set by the worker: the worker's ``input()`` raises
        #: ``StdinNotImplementedError`` when it does not; a Jupyter kernel is told.
        self.allow_stdin = True

    @abc.abstractmethod
    def execute(self, code: str, *, silent: bool = False,
                store_history: bool = True) -> ExecuteOutcome:
        """Run ``code``, emitting output to :attr:`out` as it appears; never raises for
        errors in the code itself."""

    @abc.abstractmethod
    def kernel_info(self) -> dict[str, Any]:
        """Fields of ``kernel_info_reply`` this backend knows: at least ``language_info``
        and ``banner`` (``implementation`` and versions may be overridden here too)."""

    def interact(self, interact_id: str, values: dict[str, Any], state: int) -> ExecuteOutcome:
        """Re-run an interact with new control ``values`` (``interact_request``). Backends
        without interacts keep this default."""
        return ExecuteOutcome.failed("NotImplementedError",
                                     f"{type(self).__name__} has no interacts", [])

    def evaluate(self, expressions: dict[str, str]) -> dict[str, dict[str, Any]]:
        """The ``user_expressions`` of an ``execute_reply``: each expression evaluated in
        the session's namespace, after the code, to ``{"status": "ok", "data": mimebundle,
        "metadata": {...}}`` or an error ``{"status": "error", "ename", "evalue",
        "traceback"}``, as ipykernel answers. Backends that cannot evaluate keep this
        default, which answers each with an error saying so (never a silent ``{}``)."""
        why = f"the {type(self).__name__} session does not evaluate user_expressions"
        return {name: expression_error("NotImplementedError", why, [why])
                for name in expressions}

    def comm(self, msg_type: str, content: dict[str, Any],
             buffers: list[bytes] | None = None) -> ExecuteOutcome:
        """A client's ``comm_open``, ``comm_msg``, ``comm_close`` or ``comm_info_request``
        (its content and buffers as the client sent them): pass it to the backend's comms,
        whose answers (``comm_msg``, ``comm_info_reply``...) go to :attr:`out` as messages.
        Backends without comms keep this default, which drops it."""
        return ExecuteOutcome()

    def query(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """A client's ``complete_request``, ``inspect_request``, ``is_complete_request`` or
        ``history_request`` (its content as the client sent it, unchecked):
        the content of the reply, as Jupyter's messaging spec gives it; the worker sends it.
        Backends that cannot answer keep this default: no completions, nothing found,
        "unknown" (a client then treats Enter as a new line) and no history."""
        return unanswered(msg_type, content)

    def warm_up(self) -> None:
        """Called once before the first request, with output muted: go through the paths a
        cell takes, so that a worker forked from a preloaded template copies the memory
        pages they write to while it waits in the pool, not during its session's first
        cell. Must leave no trace a session could see. The default does nothing."""

    def shutdown(self) -> None:
        """Release what the backend holds; the process exits right after."""

"""``@interact``: a function with controls, re-run in the same live session (seed 001).

The decorator makes a control for each parameter, gives the interact a unique id, keeps the
function in this session's registry, announces it (``interact_start`` with ``interact_id``,
``controls`` and ``layout``), runs it once with the defaults, and closes the announcement
(``interact_end``). Output in between belongs to the interact. An ``interact_request`` later
re-runs it with the browser's values; a request whose ``state`` is not newer than the last one
run is ignored, so a late, stale slider position never overwrites a newer one.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .backend import ExecuteOutcome, Output
from .controls import BadValue, Control, control_for

Runner = Callable[[Callable[[], Any]], ExecuteOutcome]


@dataclass
class Interact:
    function: Callable[..., Any]
    controls: dict[str, Control]
    state: int = 0


class Interacts:
    """This session's interacts, and the ``interact`` decorator bound to them."""

    def __init__(self, out: Output, run: Runner) -> None:
        self.out = out
        self.run = run  # runs a call inside a block, turning exceptions into an outcome
        self.registry: dict[str, Interact] = {}

    def decorator(self, function: Callable[..., Any] | None = None, *, auto_update: bool = True,
                  layout: list[str] | None = None) -> Any:
        """``@interact`` or ``@interact(auto_update=False)``."""
        if function is None:
            return lambda f: self.decorator(f, auto_update=auto_update, layout=layout)
        controls = {name: control_for(p.default if p.default is not inspect.Parameter.empty
                                      else None, name)
                    for name, p in inspect.signature(function).parameters.items()}
        interact_id = uuid.uuid4().hex
        self.registry[interact_id] = Interact(function, controls)
        self.out.flush()
        self.out.message("interact_start", {
            "interact_id": interact_id,
            "controls": {name: c.describe() for name, c in controls.items()},
            "layout": layout or list(controls),
            "auto_update": auto_update})
        try:
            defaults = {name: c.convert(c.default) for name, c in controls.items()}
            self._show_errors(self.run(lambda: function(**defaults)))
        finally:
            self.out.flush()
            self.out.message("interact_end", {"interact_id": interact_id})
        return function

    def _show_errors(self, outcome: ExecuteOutcome) -> None:
        if outcome.status == "error":
            self.out.message("error", {"ename": outcome.ename, "evalue": outcome.evalue,
                                       "traceback": outcome.traceback})

    def request(self, interact_id: str, values: dict[str, Any], state: int) -> ExecuteOutcome:
        """Re-run an interact with ``values`` (an ``interact_request``)."""
        entry = self.registry.get(interact_id)
        if entry is None:
            return ExecuteOutcome.failed(
                "LookupError", f"no interact {interact_id} in this session (it was restarted?)",
                [])
        if state <= entry.state:
            return ExecuteOutcome(ignored=True)
        entry.state = state
        try:
            kwargs = {name: c.convert(values[name] if name in values else c.default)
                      for name, c in entry.controls.items()}
        except BadValue as e:
            return ExecuteOutcome.failed("ValueError", str(e), [f"ValueError: {e}"])
        return self.run(lambda: entry.function(**kwargs))

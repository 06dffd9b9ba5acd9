"""The controls of ``@interact``: what each looks like on the wire and how a value the browser
sends back is turned into the argument the function gets.

Each control describes itself as a dict with ``type`` and its settings (the ``controls`` of
``interact_start``), and converts a submitted value, raising :class:`BadValue` with a message
a person understands when it cannot (text in a numeric box): the interact shows that message
in its output and the control stays usable.
"""

from __future__ import annotations

import builtins
import math
import re
from collections.abc import Sequence
from typing import Any


class BadValue(ValueError):
    """A submitted value that does not fit its control."""


class Control:
    type = "control"

    def __init__(self, default: Any = None, label: str | None = None) -> None:
        self.default = default
        self.label = label

    def describe(self) -> dict[str, Any]:
        return {"type": self.type, "default": self.default, "label": self.label}

    def convert(self, value: Any) -> Any:
        return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadValue(f"{what}: {value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise BadValue(f"{what}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise BadValue(f"{what}: {value!r} is not a finite number")
    return number


class slider(Control):
    """``slider(start, end, step=1, default=None, label=None)``: a number in a range."""
    type = "slider"

    def __init__(self, start: float, end: float, step: float = 1, default: float | None = None,
                 label: str | None = None) -> None:
        if step <= 0 or end < start:
            raise ValueError("slider needs start <= end and a positive step")
        super().__init__(start if default is None else default, label)
        self.start, self.end, self.step = start, end, step
        self.integral = all(isinstance(x, int) for x in (start, end, step))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "start": self.start, "end": self.end, "step": self.step}

    def convert(self, value: Any) -> Any:
        number = _number(value, self.label or "slider")
        number = min(max(number, self.start), self.end)
        steps = round((number - self.start) / self.step)
        number = self.start + steps * self.step
        return int(round(number)) if self.integral else number


class range_slider(slider):
    """``range_slider(start, end, step=1, default=(lo, hi), label=None)``: two ends of a range."""
    type = "range_slider"

    def __init__(self, start: float, end: float, step: float = 1,
                 default: Sequence[float] | None = None, label: str | None = None) -> None:
        super().__init__(start, end, step, None, label)
        self.default = list(default) if default is not None else [start, end]

    def convert(self, value: Any) -> Any:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise BadValue(f"{self.label or 'range'}: expected two numbers, got {value!r}")
        lo, hi = sorted(slider.convert(self, v) for v in value)
        return (lo, hi)


class input_box(Control):
    """``input_box(default='', label=None, type=str)``: text, converted with ``type``."""
    type = "input_box"

    def __init__(self, default: Any = "", label: str | None = None,
                 type: builtins.type[Any] = str) -> None:
        super().__init__(default, label)
        self.value_type = type

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "value_type": self.value_type.__name__}

    def convert(self, value: Any) -> Any:
        if self.value_type is str:
            return value if isinstance(value, str) else str(value)
        try:
            return self.value_type(value)
        except (TypeError, ValueError):
            raise BadValue(f"{self.label or 'input'}: {value!r} is not a valid "
                           f"{self.value_type.__name__}") from None


class checkbox(Control):
    """``checkbox(default=True, label=None)``."""
    type = "checkbox"

    def __init__(self, default: bool = True, label: str | None = None) -> None:
        super().__init__(bool(default), label)

    def convert(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)


class selector(Control):
    """``selector(values, default=None, label=None, buttons=False)``: one of ``values``.

    The browser shows each value's ``str`` and sends back its index."""
    type = "selector"

    def __init__(self, values: Sequence[Any], default: Any = None, label: str | None = None,
                 buttons: bool = False) -> None:
        self.values = list(values)
        if not self.values:
            raise ValueError("selector needs at least one value")
        index = self.values.index(default) if default in self.values else 0
        super().__init__(index, label)
        self.buttons = buttons

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "values": [str(v) for v in self.values],
                "buttons": self.buttons}

    def convert(self, value: Any) -> Any:
        index = value
        labels = [str(v) for v in self.values]
        if isinstance(value, str):  # a label first; the browser sends indexes as numbers
            if value in labels:
                index = labels.index(value)
            elif not value.isdigit():
                raise BadValue(f"{self.label or 'selector'}: {value!r} is not one of {labels}")
        try:
            return self.values[int(index)]
        except (ValueError, TypeError, IndexError):
            raise BadValue(f"{self.label or 'selector'}: no choice {value!r}") from None


class color_selector(Control):
    """``color_selector(default='#000000', label=None)``: a colour as ``#rrggbb``."""
    type = "color_selector"

    def __init__(self, default: str = "#000000", label: str | None = None) -> None:
        super().__init__(default, label)

    def convert(self, value: Any) -> Any:
        if not isinstance(value, str) or not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
            raise BadValue(f"{self.label or 'colour'}: {value!r} is not a colour like #1f77b4")
        return value.lower()


class input_grid(Control):
    """``input_grid(rows, cols, default=0, label=None, type=float)``: a table of values."""
    type = "input_grid"

    def __init__(self, rows: int, cols: int, default: Any = 0, label: str | None = None,
                 type: builtins.type[Any] = float) -> None:
        if isinstance(default, (list, tuple)):
            grid = [list(row) for row in default]
        else:
            grid = [[default] * cols for _ in range(rows)]
        super().__init__(grid, label)
        self.rows, self.cols, self.value_type = rows, cols, type

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "rows": self.rows, "cols": self.cols,
                "value_type": self.value_type.__name__}

    def convert(self, value: Any) -> Any:
        if (not isinstance(value, (list, tuple)) or len(value) != self.rows
                or any(not isinstance(r, (list, tuple)) or len(r) != self.cols for r in value)):
            raise BadValue(f"{self.label or 'grid'}: expected {self.rows}x{self.cols} values")
        try:
            return [[self.value_type(v) for v in row] for row in value]
        except (TypeError, ValueError) as e:
            raise BadValue(f"{self.label or 'grid'}: {e}") from None


class button(Control):
    """``button(text='Run', label=None)``: the function runs when it is pressed; its argument
    is True on that run."""
    type = "button"

    def __init__(self, text: str = "Run", label: str | None = None) -> None:
        super().__init__(False, label)
        self.text = text

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "text": self.text}

    def convert(self, value: Any) -> Any:
        return bool(value)


def control_for(default: Any, name: str) -> Control:
    """The control a parameter's default stands for (the seed's shorthands)."""
    if isinstance(default, Control):
        if default.label is None:
            default.label = name
        return default
    if isinstance(default, bool):
        return checkbox(default, label=name)
    if isinstance(default, tuple) and len(default) in (2, 3) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in default):
        return slider(default[0], default[1], default[2] if len(default) == 3 else 1,
                      label=name)
    if isinstance(default, list):
        return selector(default, label=name)
    if isinstance(default, (int, float)):
        return input_box(default, label=name, type=type(default))
    return input_box("" if default is None else default, label=name)


CONTROLS = {c.__name__: c for c in (slider, range_slider, input_box, checkbox, selector,
                                      color_selector, input_grid, button)}

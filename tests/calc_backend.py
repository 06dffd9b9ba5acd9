"""A researcher's own session backend, written from README.rst's "Session backends": a
calculator of arithmetic expressions. Offered in the tests with ``--kernels
calc=calc_backend:Calc`` (``tests/`` on ``PYTHONPATH``).

``show an object`` displays a value msgpack cannot send (a backend's mistake the worker must
survive, telling the user).
"""

from __future__ import annotations

import ast
import operator
from typing import Any

from session.backend import ExecuteOutcome, SessionBackend

OPERATORS: dict[type, Any] = {ast.Add: operator.add, ast.Sub: operator.sub,
                              ast.Mult: operator.mul, ast.Div: operator.truediv,
                              ast.Pow: operator.pow, ast.USub: operator.neg}


def evaluate(node: ast.AST) -> Any:
    """The value of an arithmetic expression's tree; ValueError for anything else."""
    if isinstance(node, ast.Expression):
        return evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        return OPERATORS[type(node.op)](evaluate(node.left), evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in OPERATORS:
        return OPERATORS[type(node.op)](evaluate(node.operand))
    raise ValueError(f"not arithmetic: {type(node).__name__}")


class Calc(SessionBackend):
    """Evaluates one arithmetic expression per cell."""

    display_name = "Calculator"
    language = "calc"

    def execute(self, code: str, *, silent: bool = False,
                store_history: bool = True) -> ExecuteOutcome:
        if code.strip() == "show an object":
            self.out.display({"text/plain": object()})
            return ExecuteOutcome()
        try:
            value = evaluate(ast.parse(code.strip(), mode="eval"))
        except (SyntaxError, ValueError, ArithmeticError) as e:
            return ExecuteOutcome.failed(type(e).__name__, str(e), [f"{type(e).__name__}: {e}"])
        return ExecuteOutcome(result={"text/plain": repr(value)})

    def kernel_info(self) -> dict[str, Any]:
        return {"language_info": {"name": "calc", "mimetype": "text/plain",
                                  "file_extension": ".calc"}, "banner": "calculator"}

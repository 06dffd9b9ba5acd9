"""A traceback names a cell by the execution_count its Jupyter client was told, through the
real chain (gateway's channels, broker on SQLite, a device's sandboxed worker): the built-in
Python session numbered every execute, silent ones too, so a client saw ``<cell-4>`` for
execution_count 3. Executes that store no history get names of their own, and every cell's
code still shows in the tracebacks of later cells."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from jupyter_ws import Channels
from module_chain import module_chain
from test_jupyter_comms import start_kernel


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One chain for the module (tests/module_chain.py)."""
    yield from module_chain(tmp_path_factory, "tracebacks")


async def execute(ch: Channels, code: str, **content: Any) -> dict[str, Any]:
    """Run ``code`` with more execute_request ``content`` (silent, store_history); its
    execute_reply's content, once the idle status parented by it came."""
    request = await ch.send("execute_request", {"code": code, "silent": False, **content})
    mine = request["header"]["msg_id"]
    got = await ch.until(lambda m: m["parent_header"].get("msg_id") == mine and m[
        "msg_type"] == "status" and m["content"]["execution_state"] == "idle", timeout=30)
    replies = [m["content"] for m in got if m["parent_header"].get("msg_id") == mine
               and m["msg_type"] == "execute_reply"]
    assert len(replies) == 1, got
    return replies[0]


def trace(reply: dict[str, Any]) -> str:
    assert reply["status"] == "error", reply
    return "".join(reply["traceback"])


async def test_traceback_names_the_execution_count(chain: Any) -> None:
    """Tests that a counted cell's traceback names ``<cell-N>`` for its execution_count N
    after executes that store no history (store_history false, silent) ran between, that
    those are named ``<cell-N.K>`` (N: the count before them), and that a later cell's
    traceback shows the source lines of both kinds of cell it passes through."""
    ch = await Channels.open(chain.port, start_kernel(chain, "python"))
    try:
        first = await execute(ch, "def f():\n    return 1 / 0")
        assert first == {**first, "status": "ok", "execution_count": 1}
        quiet = await execute(ch, "def g():\n    return f() + missing_name",
                              store_history=False)
        assert quiet == {**quiet, "status": "ok", "execution_count": 1}
        await execute(ch, "h = lambda: g()", silent=True)
        third = trace(await execute(ch, "1 +", store_history=False))  # its own name too
        assert '"<cell-1.3>", line 1' in third and "SyntaxError" in third, third

        second = await execute(ch, "f()")
        assert second["execution_count"] == 2
        text = trace(second)
        assert 'File "<cell-2>", line 1' in text and 'File "<cell-1>", line 2' in text, text
        assert "return 1 / 0" in text and "ZeroDivisionError" in text, text

        await execute(ch, "def f():\n    return 1", silent=True)  # g's f no longer fails
        last = await execute(ch, "h()")
        assert last["execution_count"] == 3
        text = trace(last)
        assert 'File "<cell-3>", line 1' in text and 'File "<cell-1.2>", line 1' in text, text
        assert 'File "<cell-1.1>", line 2' in text and "return f() + missing_name" in text, text
        assert "NameError" in text and "<cell-4>" not in text, text
    finally:
        await ch.close()


async def test_traceback_lines_end_without_a_newline(chain: Any) -> None:
    """A Jupyter client joins a traceback's entries with newlines (JupyterLab, nbconvert,
    jupyter_client's console), so no entry ends with one, as none of ipykernel's last does:
    the built-in session's entries each ended with a newline, and JupyterLab showed a blank
    line after every frame of a built-in session's error."""
    ch = await Channels.open(chain.port, start_kernel(chain, "python"))
    try:
        for code in ("def f():\n    return 1 / 0\nf()", "1 +", "import no_such_module_x"):
            reply = await execute(ch, code)
            assert reply["status"] == "error", reply
            shown = "\n".join(reply["traceback"])
            assert "\n\n" not in shown and not shown.endswith("\n"), reply["traceback"]
            assert reply["ename"] in reply["traceback"][-1], reply["traceback"]
        errors = [m["content"] for m in await ch.execute("1 / 0") if m["msg_type"] == "error"]
        assert len(errors) == 1 and "\n\n" not in "\n".join(errors[0]["traceback"]), errors
    finally:
        await ch.close()

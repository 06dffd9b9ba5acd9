"""A Jupyter client's ``user_expressions`` come back evaluated in the ``execute_reply``, as
ipykernel answers them, through the real chain (gateway, broker on SQLite, a device with a
sandboxed worker): the built-in Python session evaluates them after the code, in its own
namespace; a Jupyter kernel (ipykernel) is given them with the code and answers itself.

Before the fix every reply carried ``"user_expressions": {}`` whatever was asked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from jupyter_ws import Channels
from kernels import require_kernel
from module_chain import module_chain
from test_jupyter_comms import start_kernel

ASKED = {"answer": "x * 7", "broken": "1 / 0", "nonsense": "x +", "shape": "[x] * 2"}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One chain for the module, each test on a kernel of its own."""
    require_kernel("python3")
    yield from module_chain(tmp_path_factory, "expressions",
                            device=("--kernels", "python,python3"))


async def reply_of(ch: Channels, code: str, **content: Any) -> dict[str, Any]:
    """Run ``code`` with ``content``'s fields; the content of its execute_reply."""
    request = await ch.send("execute_request", {"code": code, "silent": False, **content})
    mine = request["header"]["msg_id"]
    got = await ch.until(lambda m: m["parent_header"].get("msg_id") == mine and m[
        "msg_type"] == "status" and m["content"]["execution_state"] == "idle", timeout=60)
    replies = [m["content"] for m in got if m["parent_header"].get("msg_id") == mine
               and m["msg_type"] == "execute_reply"]
    assert len(replies) == 1, got
    return replies[0]


@pytest.mark.parametrize("kernel", ["python", "python3"])
async def test_user_expressions_are_evaluated_after_the_code(chain, kernel: str) -> None:
    ch = await Channels.open(chain.port, start_kernel(chain, kernel))
    try:
        reply = await reply_of(ch, "x = 6", user_expressions=ASKED)
        assert reply["status"] == "ok", reply
        values = reply["user_expressions"]
        assert set(values) == set(ASKED), values
        assert values["answer"]["status"] == "ok", values
        assert values["answer"]["data"]["text/plain"] == "42"
        assert isinstance(values["answer"]["metadata"], dict)
        assert values["shape"]["data"]["text/plain"] == "[6, 6]"
        assert values["broken"]["status"] == "error"
        assert values["broken"]["ename"] == "ZeroDivisionError", values["broken"]
        assert isinstance(values["broken"]["traceback"], list)
        assert values["nonsense"]["status"] == "error"
        assert values["nonsense"]["ename"] == "SyntaxError", values["nonsense"]
        # Evaluating them changed nothing: the code's state and count go on as before.
        reply = await reply_of(ch, "x", user_expressions={"again": "x"})
        assert reply["user_expressions"]["again"]["data"]["text/plain"] == "6"
        # After an error, as ipykernel: none evaluated.
        reply = await reply_of(ch, "1/0", user_expressions={"answer": "x * 7"})
        assert reply["status"] == "error" and reply["user_expressions"] == {}, reply
        # None asked, none given.
        reply = await reply_of(ch, "y = 1")
        assert reply["user_expressions"] == {}
    finally:
        await ch.close()


async def test_user_expressions_that_are_not_expressions_are_refused(chain) -> None:
    """The gateway checks their shape, as it checks the other fields: a clear error reply."""
    ch = await Channels.open(chain.port, start_kernel(chain, "python"))
    try:
        for bad in (["x"], {"a": 7}, "x"):
            reply = await reply_of(ch, "x = 1", user_expressions=bad)
            assert reply["status"] == "error" and "user_expressions" in reply["evalue"], reply
        reply = await reply_of(ch, "x = 1", user_expressions={"big": "x" * 1_100_000})
        assert reply["status"] == "error" and "over the limit" in reply["evalue"], reply
    finally:
        await ch.close()

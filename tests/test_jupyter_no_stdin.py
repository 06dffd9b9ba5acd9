"""``allow_stdin: false`` (what nbclient and ``jupyter nbconvert --execute`` send): a cell's
``input()`` raises ``StdinNotImplementedError`` at once, as in IPython, instead of asking a
client that cannot answer, through the real chain (gateway, broker on SQLite, a device with
a sandboxed worker), for the built-in session and ipykernel; with ``allow_stdin: true`` the
prompt is asked as before.

Before the fix the worker ignored the flag (and ipykernel was always told true): the prompt
went out and the cell waited for an answer that never came (the notebook hung until the
device's --input-timeout or nbclient's own timeout)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from jupyter_ws import Channels
from kernels import require_kernel
from module_chain import module_chain
from test_jupyter_comms import start_kernel
from test_jupyter_stop_on_error import idle_of, of


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require_kernel("python3")
    yield from module_chain(tmp_path_factory, "nostdin", device=("--kernels", "python,python3"))


@pytest.mark.parametrize("kernel", ["python", "python3"])
async def test_input_without_stdin_raises_at_once(chain, kernel: str) -> None:
    ch = await Channels.open(chain.port, start_kernel(chain, kernel))
    try:
        request = await ch.send("execute_request", {
            "code": "name = input('who? ')", "silent": False, "allow_stdin": False})
        got = of(await ch.until(idle_of(request), timeout=60), request)
        assert not [m for m in got if m["msg_type"] == "input_request"], got
        reply = [m["content"] for m in got if m["msg_type"] == "execute_reply"]
        assert reply[0]["status"] == "error", got
        assert reply[0]["ename"] == "StdinNotImplementedError", reply
        assert "does not support input requests" in reply[0]["evalue"], reply
        # A client that answers gets the prompt (and the session goes on).
        request = await ch.send("execute_request", {
            "code": "name = input('who? ')\nprint('hi', name)", "silent": False,
            "allow_stdin": True})
        prompt = (await ch.until(lambda m: m["msg_type"] == "input_request", timeout=60))[-1]
        assert prompt["content"]["prompt"] == "who? " and prompt["channel"] == "stdin"
        await ch.send("input_reply", {"value": "ann"}, channel="stdin")
        got = of(await ch.until(idle_of(request), timeout=60), request)
        assert "hi ann" in "".join(m["content"]["text"] for m in got
                                   if m["msg_type"] == "stream"), got
    finally:
        await ch.close()

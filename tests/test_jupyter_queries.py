"""A Jupyter client's questions about code (complete_request, inspect_request,
is_complete_request) reach the session and come back answered, through the real chain:
gateway, broker on SQLite, a device with a sandboxed worker. The built-in Python session
answers from its own namespace; a Jupyter kernel (ipykernel) answers with its own completer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from jupyter_ws import Channels
from kernels import require_kernel
from module_chain import module_chain
from test_jupyter_comms import start_kernel


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One chain for the module, each test on a kernel of its own (tests/module_chain.py)."""
    require_kernel("python3")
    yield from module_chain(tmp_path_factory, "queries", device=("--kernels", "python,python3"))


async def ask(ch: Channels, msg_type: str, **content: Any) -> dict[str, Any]:
    """Send a query on the shell channel; its reply, once the idle parented by it came."""
    request = await ch.send(msg_type, content)
    mine = request["header"]["msg_id"]
    got = await ch.until(lambda m: m["parent_header"].get("msg_id") == mine and m[
        "msg_type"] == "status" and m["content"]["execution_state"] == "idle", timeout=30)
    replies = [m for m in got if m["parent_header"].get("msg_id") == mine
               and m["msg_type"] == msg_type.replace("_request", "_reply")]
    assert len(replies) == 1, got
    assert replies[0]["channel"] == "shell"
    return replies[0]["content"]


async def test_the_built_in_session_completes_and_explains_its_own_names(chain) -> None:
    kernel_id = start_kernel(chain, "python")
    ch = await Channels.open(chain.port, kernel_id)
    try:
        await ch.execute("import os\nzebra_count = 41\ndef zebra_feed(hay, water=2):\n"
                         "    '''Feed the zebras.'''\n", timeout=60)
        got = await ask(ch, "complete_request", code="x = zebra_", cursor_pos=10)
        assert got["status"] == "ok" and sorted(got["matches"]) == ["zebra_count", "zebra_feed"]
        assert (got["cursor_start"], got["cursor_end"]) == (4, 10)
        got = await ask(ch, "complete_request", code="os.path.jo", cursor_pos=10)
        assert got["matches"] == ["os.path.join"] and got["cursor_start"] == 0
        got = await ask(ch, "inspect_request", code="zebra_feed(", cursor_pos=3,
                        detail_level=0)
        assert got["found"] is True
        assert "zebra_feed(hay, water=2)" in got["data"]["text/plain"]
        assert "Feed the zebras." in got["data"]["text/plain"]
        got = await ask(ch, "inspect_request", code="no_such_name", cursor_pos=4)
        assert got == {"status": "ok", "found": False, "data": {}, "metadata": {}}
        assert await ask(ch, "is_complete_request", code="for i in range(3):") == {
            "status": "incomplete", "indent": "    "}
        assert (await ask(ch, "is_complete_request", code="x = 1"))["status"] == "complete"
        assert (await ask(ch, "is_complete_request", code="x = )"))["status"] == "invalid"
        # A query with nonsense in it gets an answer, not a stuck client
        got = await ask(ch, "complete_request", code=7, cursor_pos="here")
        assert got["status"] == "ok" and isinstance(got["matches"], list)
        status, doc = chain.http("GET", f"/api/kernels/{kernel_id}")
        assert status == 200 and doc["execution_state"] == "idle", doc
    finally:
        await ch.close()


async def test_a_jupyter_kernel_answers_with_its_own_completer(chain) -> None:
    kernel_id = start_kernel(chain, "python3")
    ch = await Channels.open(chain.port, kernel_id)
    try:
        await ch.execute("giraffe_height = 5", timeout=60)
        got = await ask(ch, "complete_request", code="giraffe_h", cursor_pos=9)
        assert "giraffe_height" in got["matches"], got
        got = await ask(ch, "inspect_request", code="giraffe_height", cursor_pos=3,
                        detail_level=0)
        assert got["found"] is True and "int" in str(got["data"]), got
        got = await ask(ch, "is_complete_request", code="if True:")
        assert got["status"] == "incomplete", got
    finally:
        await ch.close()

"""Jupyter's REST bodies with wrong types or unknown kernels: a 400 that says what is wrong,
never a kernel started with defaults in place of what the client sent."""

from __future__ import annotations

import json

import pytest

BAD_STARTS = [
    ("/api/kernels", {"name": 5}, "kernel name"),
    ("/api/kernels", {"name": ["python"]}, "kernel name"),
    ("/api/kernels", {"name": "nope"}, "'nope' kernel is not available"),
    ("/api/sessions", {"path": "a", "type": "notebook", "kernel": {"name": 5}}, "kernel name"),
    ("/api/sessions", {"path": "a", "type": "notebook", "kernel": {"name": "nope"}},
     "'nope' kernel is not available"),
    ("/api/sessions", {"path": "a", "type": "notebook", "kernel": 5}, "kernel"),
    ("/api/sessions", {"path": "a", "type": "notebook", "kernel": {"id": 5}}, "kernel id"),
    ("/api/sessions", {"path": 5, "type": "notebook"}, "path"),
    ("/api/sessions", {"path": "a", "type": ["notebook"]}, "type"),
    ("/api/sessions", {"path": "a", "name": {}, "type": "notebook"}, "name"),
    ("/api/sessions", {"path": "p" * 4097, "type": "notebook"}, "the limit is 4096"),
    ("/api/sessions", {"path": "a", "name": "n" * 100_000, "type": "notebook"}, "limit"),
]


def kernel_ids(chain) -> set[str]:
    status, kernels = chain.http("GET", "/api/kernels")
    assert status == 200, kernels
    return {k["id"] for k in kernels}


@pytest.mark.parametrize(("path", "body", "says"), BAD_STARTS,
                         ids=[f"{p}-{json.dumps(b)[:60]}" for p, b, _ in BAD_STARTS])
def test_a_bad_start_is_400_and_starts_nothing(shared_chain, path, body, says) -> None:
    """Each body answers 400 naming the field (Jupyter clients read ``message``), and no
    kernel is started in its place."""
    before = kernel_ids(shared_chain)
    status, doc = shared_chain.http("POST", path, json.dumps(body).encode())
    assert status == 400, doc
    assert says in doc["error"] and doc["message"] == doc["error"]
    assert kernel_ids(shared_chain) == before


def test_a_bad_patch_is_400_and_changes_nothing(shared_chain) -> None:
    """PATCH /api/sessions/ID with a wrong type, an unknown kernel name, or another running
    kernel's id (a session cannot move to it) answers 400 and leaves the session as it
    was; a PATCH of its path is kept in the answer as before (a kernel name that is
    offered starts a kernel for the session: test_jupyter_gateway_client.py)."""
    status, made = shared_chain.http("POST", "/api/sessions", json.dumps({
        "path": "p.ipynb", "type": "notebook", "kernel": {"name": "python"}}).encode())
    assert status == 201, made
    sid = made["id"]
    for body in ({"path": 5}, {"kernel": {"name": 5}}, {"kernel": {"name": "nope"}},
                 {"kernel": {"id": "00000000-0000-0000-0000-000000000000"}}, {"kernel": []}):
        status, doc = shared_chain.http("PATCH", f"/api/sessions/{sid}",
                                        json.dumps(body).encode())
        assert status == 400, (body, doc)
    status, doc = shared_chain.http("PATCH", f"/api/sessions/{sid}", json.dumps(
        {"path": "q.ipynb", "kernel": {"id": sid}}).encode())
    assert status == 200 and doc["path"] == "q.ipynb" and doc["kernel"]["id"] == sid, doc
    assert shared_chain.http("DELETE", f"/api/sessions/{sid}")[0] == 204


async def test_a_flood_of_garbage_on_channels_is_one_log_line(shared_chain) -> None:
    """Tests that 200 frames that are no Jupyter message, on one channels socket, make one
    gateway log line (protocol/ratelog.py), and that the socket still answers."""
    from jupyter_ws import Channels
    status, doc = shared_chain.http("POST", "/api/kernels", b'{"name": "python"}')
    assert status == 201, doc
    ch = await Channels.open(shared_chain.port, doc["id"])
    try:
        for i in range(200):
            await ch.ws.write_message(f"not a message {i}")
        info = await ch.send("kernel_info_request", {})
        await ch.until(lambda m: m["parent_header"].get("msg_id") == info["header"]["msg_id"])
    finally:
        await ch.close()
    said = [line for line in shared_chain.gateway.log.splitlines()
            if "sent what is no message" in line]
    assert len(said) == 1, said[:3]


async def test_an_execute_request_flag_of_another_type_is_refused(shared_chain) -> None:
    """Tests that ``"silent": "yes"`` (ipykernel would take it as true) is refused with an
    error reply that names it, and nothing runs, where it used to run as not silent."""
    from jupyter_ws import Channels
    status, doc = shared_chain.http("POST", "/api/kernels", b'{"name": "python"}')
    assert status == 201, doc
    ch = await Channels.open(shared_chain.port, doc["id"])
    try:
        sent = await ch.send("execute_request", {"code": "print('ran')", "silent": "yes"})
        got = await ch.until(lambda m: m["msg_type"] == "execute_reply"
                             and m["parent_header"].get("msg_id") == sent["header"]["msg_id"])
        assert got[-1]["content"]["status"] == "error"
        assert "silent must be true or false" in got[-1]["content"]["evalue"]
        assert not [m for m in got if m["msg_type"] in ("execute_input", "stream")], got
        assert "ok\n" == "".join(m["content"]["text"] for m in await ch.execute("print('ok')")
                                 if m["msg_type"] == "stream")
    finally:
        await ch.close()

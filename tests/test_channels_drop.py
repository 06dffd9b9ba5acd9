"""A Jupyter channels client whose connection drops mid-stream, and that comes back with its
``session_id``: the delivery position the store keeps for it never runs ahead of what the
client has read, so a reconnect replays from there and loses nothing (at least once; a clean
close, or the pongs of a client that reads, make it exactly once)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from gateway.jupyter.model import ANONYMOUS
from harness import Chain
from jupyter_ws import Channels, stdout
from raw_ws import CLOSE, TEXT, RawSocket

LINES = 3000
#: Each line ~100 bytes: ~300 KB of output, far more than a small receive window holds.
CODE = f"for i in range({LINES}):\n    print(f'line {{i:05d}} ' + 'x' * 88, flush=True)\n"


def start_kernel(chain: Chain) -> str:
    status, doc = chain.http("POST", "/api/kernels", json.dumps({"name": "python"}).encode())
    assert status == 201, doc
    return str(doc["id"])


def lines_of(msgs: list[dict]) -> list[str]:
    return [line[:10] for line in stdout(msgs).splitlines()]


def expected(start: int = 0) -> list[str]:
    return [f"line {i:05d}" for i in range(start, LINES)]


def expected_text() -> str:
    return "".join(f"line {i:05d} {'x' * 88}\n" for i in range(LINES))


def execute_request(client: str) -> dict:
    return {"header": {"msg_id": uuid.uuid4().hex, "msg_type": "execute_request",
                       "session": client, "username": "test", "version": "5.4",
                       "date": "2026-01-01T00:00:00.000000Z"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": CODE, "silent": False}}


async def subscribed(channels: Channels) -> None:
    """Wait until the gateway has placed ``channels``' subscription, its start included:
    tornado reads a socket's messages only once its ``open`` (the delivery position from the
    store, then the subscription) is done, so the reply to a kernel_info_request comes
    after it. A new ``session_id`` starts at the running execution's first output, or after
    the last output when nothing runs: a client that connects after a run ended gets none of
    it (under CPU load the old order, the execute sent first, often let the 3,000 lines end
    before the watcher's delivery position was read, and the watcher waited 30 s for
    nothing)."""
    info = await channels.send("kernel_info_request", {})
    await channels.until(lambda m: m["msg_type"] == "kernel_info_reply" and m[
        "parent_header"].get("msg_id") == info["header"]["msg_id"])


def run_ended(chain: Chain, kernel_id: str, msg_id: str, timeout: float = 30) -> None:
    """Block until the run of the execute ``msg_id`` has ended, as the cellbus HTTP API
    says of its cell (a long-poll, so no fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, doc = chain.http(
            "GET", f"/home/{ANONYMOUS}/{kernel_id}/cell-{msg_id}/update?wait=5")
        if status == 200 and doc["status"] in ("done", "error"):
            return
    raise AssertionError(f"the run of {msg_id} did not end within {timeout} s")


def read_lines(raw: RawSocket, count: int) -> list[dict]:
    """The first messages on the client's socket, up to ``count`` lines of output."""
    got: list[dict] = []
    while len(lines_of(got)) < count:
        frame = raw.read_frame(timeout=10)
        assert frame is not None and frame[0] != CLOSE, "the socket closed"
        if frame[0] == TEXT:
            got.append(json.loads(frame[1]))
    return got


async def test_a_client_whose_connection_breaks_mid_stream_loses_no_line(
        running_chain: Chain) -> None:
    """Tests that a channels client that read the first 100 lines of a long output, its
    connection then reset (a crash, a lost network), comes back with its session_id and
    gets every line after the ones it read, in order: the position stored was the last
    message handed to tornado, thousands of lines past what the client had, which died in
    tornado's stream and the kernel's send queue."""
    chain = running_chain
    kernel_id = start_kernel(chain)
    watcher = await Channels.open(chain.port, kernel_id, client="watcher")
    await subscribed(watcher)
    raw = RawSocket(chain.port, rcvbuf=4096,
                    path=f"/api/kernels/{kernel_id}/channels?session_id=tab")
    request = execute_request("tab")
    raw.send_text(json.dumps(request))
    try:  # the watcher is read once the run has ended: what it gets was kept for it
        await asyncio.to_thread(run_ended, chain, kernel_id, request["header"]["msg_id"])
        seen = await watcher.until(lambda m: m["msg_type"] == "status" and m["content"][
            "execution_state"] == "idle" and m["parent_header"].get("msg_id") == request[
            "header"]["msg_id"])
    finally:
        await watcher.close()
    assert lines_of(seen) == expected()
    got = read_lines(raw, 100)
    raw.abort()
    again = await Channels.open(chain.port, kernel_id, client="tab")
    replayed: list[dict] = []
    try:  # up to the cell's idle status, or what comes in 10 s if that was skipped too
        async with asyncio.timeout(10):
            while not (replayed and replayed[-1]["msg_type"] == "status" and replayed[-1][
                    "content"]["execution_state"] == "idle" and replayed[-1][
                    "parent_header"].get("msg_id") == request["header"]["msg_id"]):
                replayed.append(await again.recv())
    except TimeoutError:
        pass
    finally:
        await again.close()
    full, had, rest = expected_text(), stdout(got), stdout(replayed)
    assert full.startswith(had) and full.endswith(rest)
    first = full.count("\n", 0, len(full) - len(rest))  # the line the replay starts in
    assert len(full) - len(rest) <= len(had), f"lines {had.count(chr(10))} to {first - 1} " \
        "were lost"

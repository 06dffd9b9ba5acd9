"""Store reads asked per request or per client poll, against how long a session has run.

    .venv/bin/python bench/history_reads.py [--store URL] [--sizes 1000,10000,100000]

The stored-history curve of ``bench/scale.py`` grows the store with other users' closed
sessions. This one grows what a single long session holds, as a Jupyter kernel kept open
for days or an @interact slider moved all afternoon would: for each size N, one session
with N finished execute requests and one unfinished, and one cell with N finished interact
runs after its execute. Then, median of 9, the reads the broker asks on the hot paths:

- ``unfinished_requests`` (every Jupyter kernel listing, each channels connect, a cell's
  interrupt), and for reference ``session_requests``, which those paths read before;
- ``cell_request`` of the slider's cell (each ``/update``, file, prompt answer, interrupt);
- the slider cell's view folded from the store (a broker's first ``/update`` or reconnect
  of that cell after a restart, or once the view left its cache): the cell's own output,
  then its interact's runs (``broker/interactruns.py``), with N other cells' and N runs'
  messages stored after it.

A read that does not grow with N is served from an index (``broker/store/``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker.cells import Cells  # noqa: E402
from broker.store import DONE, WORKING, Request, Store, open_store  # noqa: E402

BATCH = 500


def _request(session: str, cell: str, kind: str = "execute_request",
             interact: str | None = None, state: int | None = None) -> Request:
    msg_id = uuid.uuid4().hex
    content: dict[str, Any] = {"code": "1"} if interact is None else {
        "interact_id": interact, "values": {"n": state}, "state": state}
    msg = {"header": {"msg_id": msg_id, "msg_type": kind}, "msg_id": msg_id,
           "msg_type": kind, "parent_header": {}, "metadata": {}, "content": content}
    return Request(msg_id, session, "bench", "long", cell, kind, "1" if interact is None
                   else "", msg, interact_id=interact, state=state)


def _message(parent: Request, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    """An output message of ``parent``, as the broker stores it."""
    msg_id = uuid.uuid4().hex
    facts = {"cellbus": {"interact_id": parent.interact_id, "user": parent.user,
                         "worksheet": parent.worksheet, "cell_id": parent.cell_id}
             } if parent.interact_id else {}
    return {"header": {"msg_id": msg_id, "msg_type": msg_type}, "msg_id": msg_id,
            "msg_type": msg_type, "metadata": facts, "content": content,
            "parent_header": {"msg_id": parent.msg_id, "msg_type": parent.msg_type}}


def _run_output(request: Request, *middle: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """What a worker sends for ``request``: busy, ``middle``, its reply, idle."""
    reply = "interact_reply" if request.interact_id else "execute_reply"
    return [_message(request, "status", {"execution_state": "busy"}),
            *(_message(request, kind, content) for kind, content in middle),
            _message(request, reply, {"status": "ok"}),
            _message(request, "status", {"execution_state": "idle"})]


async def _store_output(store: Store, session: str, requests: list[Request]) -> None:
    items = []
    for r in requests:
        text = {"name": "stdout", "text": f"{r.state if r.interact_id else r.cell_id}\n"}
        items += [(session, m) for m in _run_output(r, ("stream", text))]
    await store.append_messages(items)


async def _grow(store: Store, session: str, have: int, want: int) -> None:
    """Add finished executes to ``session``, and finished interact runs to its cell
    "slider", each with its output."""
    for start in range(have, want, BATCH):
        n = min(BATCH, want - start)
        added = await asyncio.gather(*(store.add_request(_request(session, f"c{start + i}"))
                                       for i in range(n)), *(store.add_request(_request(
                                           session, "slider", "interact_request", "i",
                                           start + i)) for i in range(n)))
        await asyncio.gather(*(store.update_request(r.msg_id, WORKING, device="d")
                               for r in added))
        await asyncio.gather(*(store.update_request(r.msg_id, DONE) for r in added))
        await _store_output(store, session, added)


async def _median_ms(read: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(9):
        started = time.perf_counter()
        await read()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def run(url: str, sizes: list[int]) -> None:
    session = uuid.uuid4().hex
    print(f"store {url}\n")
    print("| N: executes in the session (and interact runs) | unfinished_requests "
          "| session_requests (read before) | cell_request, past N interact runs "
          "| the slider cell's view folded from the store |")
    print("|---|---|---|---|---|")
    async with open_store(url) as store:
        slider = await store.add_request(_request(session, "slider"))
        await store.append_messages([(session, m) for m in _run_output(
            slider, ("interact_start", {"interact_id": "i", "controls": {}}),
            ("interact_end", {}))])
        have = 0
        for size in sizes:
            await _grow(store, session, have, size)
            have = size
            running = await store.add_request(_request(session, f"running{size}"))
            unfinished = await _median_ms(lambda: store.unfinished_requests(session))
            everything = await _median_ms(lambda: store.session_requests(session))
            latest = await _median_ms(lambda: store.cell_request("bench", "long", "slider"))
            folded = await _median_ms(lambda: Cells(store).view(slider))
            view = await Cells(store).view(slider)
            shown = [b for b in view.output.blocks().values() if b["type"] == "interact"]
            assert shown and f"'{size - 1}\\n'" in repr(shown[0]["output"]), \
                f"the slider cell's view does not show its last run: {shown}"
            print(f"| {size:,} | {unfinished:.2f} ms | {everything:.2f} ms | {latest:.2f} ms "
                  f"| {folded:.2f} ms |")
            await store.update_request(running.msg_id, WORKING, device="d")
            await store.update_request(running.msg_id, DONE)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", help="a store URL (default: a new SQLite file)")
    p.add_argument("--sizes", default="1000,10000,100000")
    args = p.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run(args.store or f"sqlite:///{folder}/history.db", sizes))


if __name__ == "__main__":
    main()

"""A worksheet's .ipynb is refused with 413 once its code and output pass what one reply to
the gateway may carry (broker/notebook.py MAX_BYTES), before the broker reads the rest: it
was built whole, dropped by the gateway as oversize, and answered 503 after 10 s. Over a
real SQLite store, in process."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from broker.notebook import MAX_BYTES, WAITING, Notebooks
from broker.placement import DeviceTable
from broker.refusal import Refused
from broker.store import Request, SessionRecord, sqlite_url
from broker.store.sqlite import SQLiteStore
from protocol import msgtypes as mt
from protocol.wire import Message, Session

pytestmark = pytest.mark.timeout(60)

#: Output of one run at most: the broker's --cell-output default.
CELL_OUTPUT = 8 * 2**20


class CountingStore(SQLiteStore):
    """The SQLite store, counting the cells whose messages were read."""

    reads = 0

    async def messages(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.reads += 1
        return await super().messages(*args, **kwargs)


async def worksheet(store: SQLiteStore, cells: int, output: int) -> None:
    """Cells 1..``cells`` of alice/big, each run once with ``output`` bytes of stdout."""
    wire = Session(b"notebook-size")
    await store.put_session(SessionRecord(session="s", user="alice", worksheet="big",
                                          device=None, state="open", created=1.0,
                                          last_activity=1.0))
    for n in range(1, cells + 1):
        request = wire.msg(mt.EXECUTE_REQUEST, {"code": f"print({n})"})
        await store.add_request(Request(
            msg_id=request["msg_id"], session="s", user="alice", worksheet="big",
            cell_id=str(n), msg_type=mt.EXECUTE_REQUEST, input=f"print({n})",
            message=request))
        out: Message = wire.msg(mt.STREAM, {"name": "stdout", "text": "y" * output},
                                parent=request)
        await store.append_messages([("s", out)])


async def test_a_notebook_too_big_for_one_reply_is_413_before_it_is_read_whole(
        tmp_path: Path) -> None:
    """Tests that 12 cells of 8 MiB output each (what the default quotas allow) are
    refused with 413 and the limit, after reading the cells that pass it and no more, and
    that with a higher limit its JSON, bigger than one frame to the gateway, is refused
    too."""
    store = CountingStore(sqlite_url(tmp_path / "cellbus.db"))
    await store.open()
    try:
        await worksheet(store, 12, CELL_OUTPUT - 4096)  # 6 of them fit, with their code
        with pytest.raises(Refused) as refused:
            await Notebooks(store, DeviceTable()).get({}, ("alice", "big", "notebook.ipynb"))
        assert refused.value.http_status == 413
        assert f"over {MAX_BYTES // 2**20} MiB" in str(refused.value)
        assert store.reads == MAX_BYTES // CELL_OUTPUT + 1
        with pytest.raises(Refused) as refused:  # its output fits, its JSON not one frame
            await Notebooks(store, DeviceTable(), max_bytes=13 * CELL_OUTPUT).get(
                {}, ("alice", "big", "notebook.ipynb"))
        assert refused.value.http_status == 413
    finally:
        await store.close()


async def test_downloads_are_built_one_at_a_time_and_too_many_are_refused(
        tmp_path: Path) -> None:
    """Tests that downloads at once wait for each other's builds (each holds its cells'
    output), that one past :data:`WAITING` waiting is refused with 503 and Retry-After at
    once, and that those let in all get the same notebook: ten big downloads at once held
    the broker's loop for seconds."""
    store = SQLiteStore(sqlite_url(tmp_path / "cellbus.db"))
    await store.open()
    try:
        await worksheet(store, 3, 2**20)
        notebooks = Notebooks(store, DeviceTable())
        building = 0
        most = 0
        build = notebooks.build

        async def counted(address):  # type: ignore[no-untyped-def]
            nonlocal building, most
            building += 1
            most = max(most, building)
            try:
                return await build(address)
            finally:
                building -= 1

        notebooks.build = counted  # type: ignore[method-assign]
        got = await asyncio.gather(
            *(notebooks.get({}, ("alice", "big", "notebook.ipynb")) for _ in range(WAITING + 2)),
            return_exceptions=True)
        refused = [g for g in got if isinstance(g, Refused)]
        assert len(refused) == 1 and refused[0].http_status == 503
        assert refused[0].retry_after and "notebook downloads under way" in str(refused[0])
        bodies = {g[1][0] for g in got if not isinstance(g, BaseException)}
        assert len(bodies) == 1 and most == 1
        body = bodies.pop()
        assert len(json.loads(body)["cells"]) == 3
        assert got[0][0] == {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    finally:
        await store.close()


async def test_a_notebook_is_measured_and_made_off_the_loop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that measuring a download's outputs (for MAX_BYTES) and making its notebook run
    on a thread, not on the broker's loop: ten loops downloading a worksheet of 7 MB put
    another user's polls at a median of 0.15 s, up to 1.2 s (bench/read_hammer.py --mode
    notebook); 76 ms and 0.37 s with both on a thread."""
    import threading

    import broker.notebook as nb
    loop_thread = threading.get_ident()
    threads: dict[str, set[int]] = {"measured": set(), "made": set()}
    measure, make = nb.message_size, nb.notebook

    def measured(msg: Message) -> int:
        threads["measured"].add(threading.get_ident())
        return measure(msg)

    def made(*args):  # type: ignore[no-untyped-def]
        threads["made"].add(threading.get_ident())
        return make(*args)

    monkeypatch.setattr(nb, "message_size", measured)
    monkeypatch.setattr(nb, "notebook", made)
    store = SQLiteStore(sqlite_url(tmp_path / "cellbus.db"))
    await store.open()
    try:
        await worksheet(store, 2, 1024)
        said, [body] = await Notebooks(store, DeviceTable()).get(
            {}, ("alice", "big", "notebook.ipynb"))
        assert len(json.loads(body)["cells"]) == 2
        assert threads["measured"] and threads["made"], threads
        assert loop_thread not in threads["measured"] | threads["made"]
    finally:
        await store.close()

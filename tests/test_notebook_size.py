"""A worksheet's .ipynb is refused with 413 once its code and output pass what one reply to
the gateway may carry (broker/notebook.py MAX_BYTES), before the broker reads the rest: it
was built whole, dropped by the gateway as oversize, and answered 503 after 10 s. Over a
real SQLite store, in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.notebook import MAX_BYTES, Notebooks
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
    that a worksheet under the limit still downloads."""
    store = CountingStore(sqlite_url(tmp_path / "cellbus.db"))
    await store.open()
    try:
        await worksheet(store, 12, CELL_OUTPUT - 4096)  # 6 of them fit, with their code
        with pytest.raises(Refused) as refused:
            await Notebooks(store, DeviceTable()).get({}, ("alice", "big", "notebook.ipynb"))
        assert refused.value.http_status == 413
        assert f"over {MAX_BYTES // 2**20} MiB" in str(refused.value)
        assert store.reads == MAX_BYTES // CELL_OUTPUT + 1
        reply, _ = await Notebooks(store, DeviceTable(), max_bytes=13 * CELL_OUTPUT).get(
            {}, ("alice", "big", "notebook.ipynb"))
        assert len(reply["notebook"]["cells"]) == 12
    finally:
        await store.close()

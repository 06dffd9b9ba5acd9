"""Binary buffers of comm messages (ipywidgets' bytes), both ways between a channels client
and a Jupyter kernel (ipykernel) through the real chain, over both wire formats, from the
store on a reconnect, and an oversize one refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from jupyter_ws import Channels
from kernels import require_kernel
from module_chain import module_chain
from test_jupyter_comms import comm_of, start_kernel

#: A comm target that sends back, with a comm_msg, the data and buffers it receives.
ECHO_BUFFERS = """
def _echo(comm, open_msg):
    comm.on_msg(lambda msg: comm.send({"echo": msg["content"]["data"]},
                                      buffers=[bytes(b) for b in msg["buffers"]]))
get_ipython().kernel.comm_manager.register_target("echo_buffers", _echo)
"""
#: Bytes of every value, a zero-length buffer and a bigger one, in this order.
BUFFERS = [b"xyz", bytes(range(256)), b"", bytes(range(256))[::-1] * 1000]
#: A cell whose comm sends buffers (the colleague's ``comm.send(..., buffers=[b'xyz'])``).
KERNEL_SENDS = ('from comm import create_comm\n'
                'c = create_comm(target_name="t", data={"n": 1})\n'
                'c.send({"n": 2}, buffers=[b"xyz", bytes(range(256)), b""])')
KERNEL_BUFFERS = [b"xyz", bytes(range(256)), b""]


@pytest.fixture(scope="module")
def buffers_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One chain for the module, each test on a kernel of its own (tests/module_chain.py);
    its gateway sends JSON clients buffers (--legacy-buffers)."""
    require_kernel("python3")
    yield from module_chain(tmp_path_factory, "buffers", device=("--kernels", "python,python3"),
                            gateway=("--legacy-buffers",))


async def echo_comm(ch: Channels) -> str:
    """Register :data:`ECHO_BUFFERS` in the kernel and open a comm to it; its comm_id."""
    done = await ch.execute(ECHO_BUFFERS, timeout=60)
    assert [m for m in done if m["msg_type"] == "error"] == [], done
    comm_id = uuid.uuid4().hex
    opened = await ch.send("comm_open", {"comm_id": comm_id, "target_name": "echo_buffers",
                                         "data": {}})
    await ch.until(lambda m: m["msg_type"] == "status" and m["content"][
        "execution_state"] == "idle" and m["parent_header"].get("msg_id") == opened[
        "header"]["msg_id"])
    return comm_id


@pytest.mark.parametrize("binary", [True, False], ids=["v1", "legacy"])
async def test_comm_buffers_echo_both_ways(buffers_chain: Any, binary: bool) -> None:
    """A client's comm_msg with buffers reaches the kernel with those buffers (bytes in =
    bytes out, in order), and the kernel's comm_msg with them reaches the client: in the v1
    frame, or as jupyter_server's binary message on a legacy socket."""
    kernel_id = start_kernel(buffers_chain, "python3")
    ch = await Channels.open(buffers_chain.port, kernel_id, binary=binary)
    try:
        comm_id = await echo_comm(ch)
        sent = await ch.send("comm_msg", {"comm_id": comm_id, "data": {"v": 1}},
                             buffers=BUFFERS)
        got = await ch.until(comm_of(comm_id, "comm_msg"), timeout=60)
        echo = got[-1]
        assert echo["content"]["data"] == {"echo": {"v": 1}}
        assert echo["parent_header"]["msg_id"] == sent["header"]["msg_id"]
        assert echo["buffers"] == BUFFERS
        assert echo["channel"] == "iopub"
    finally:
        await ch.close()


async def test_kernel_sent_buffers_reach_a_legacy_client(buffers_chain: Any) -> None:
    """``comm.send(..., buffers=[...])`` in a cell reaches a legacy (JSON) client as
    jupyter_server sends such a message: one binary frame, its buffers after the JSON;
    a message without buffers stays a JSON text frame. (Without --legacy-buffers such a
    client gets it as text without buffers: test_jupyter_server_client.py.)"""
    kernel_id = start_kernel(buffers_chain, "python3")
    ch = await Channels.open(buffers_chain.port, kernel_id)
    try:
        msgs = await ch.execute(KERNEL_SENDS, timeout=60)
        sent = [m for m in msgs if m["msg_type"] == "comm_msg"]
        assert len(sent) == 1, [m["msg_type"] for m in msgs]
        assert sent[0]["content"]["data"] == {"n": 2}
        assert sent[0]["buffers"] == KERNEL_BUFFERS
        opened = [m for m in msgs if m["msg_type"] == "comm_open"]
        assert opened[0]["buffers"] == []  # a text frame's, as jupyter_server writes it
    finally:
        await ch.close()


async def test_a_replay_from_the_store_carries_the_buffers(buffers_chain: Any) -> None:
    """A client that comes back with its session_id gets, from the store, the comm_msg
    another client's cell caused while it was away, with its buffers."""
    await replay_carries_buffers(buffers_chain)


async def test_a_replay_carries_the_buffers_on_a_json_bus(chain: Any) -> None:
    """The same with every node on ``--packer json``, where a message's content can hold no
    bytes: the replay's buffers travel as its reply's frames."""
    require_kernel("python3")
    chain.start_broker("--packer", "json")
    chain.start_device("--packer", "json", "--kernels", "python,python3")
    chain.start_gateway("--packer", "json")
    await replay_carries_buffers(chain)


async def replay_carries_buffers(chain: Any) -> None:
    """A client away while another's cell made a comm send buffers gets them on its return."""
    kernel_id = start_kernel(chain, "python3")
    away = await Channels.open(chain.port, kernel_id, binary=True)
    await away.execute("1", timeout=60)
    await away.close()
    other = await Channels.open(chain.port, kernel_id)
    try:
        await other.execute(KERNEL_SENDS, timeout=60)
    finally:
        await other.close()
    back = await Channels.open(chain.port, kernel_id, client=away.client, binary=True)
    try:
        got = await back.until(lambda m: m["msg_type"] == "comm_msg")
        assert got[-1]["content"]["data"] == {"n": 2}
        assert got[-1]["buffers"] == KERNEL_BUFFERS
    finally:
        await back.close()


async def test_an_oversize_buffer_is_refused_clearly(buffers_chain: Any) -> None:
    """A comm_msg whose buffers take it over the limit of a client's comm message (1 MiB)
    never reaches the kernel, and the gateway's log says the limit in words; the next
    message's echo comes."""
    from protocol.msgtypes import MAX_COMM_MESSAGE
    kernel_id = start_kernel(buffers_chain, "python3")
    ch = await Channels.open(buffers_chain.port, kernel_id, binary=True)
    try:
        comm_id = await echo_comm(ch)
        await ch.send("comm_msg", {"comm_id": comm_id, "data": {"big": 1}},
                      buffers=[b"x" * MAX_COMM_MESSAGE])
        await ch.send("comm_msg", {"comm_id": comm_id, "data": {"small": 1}},
                      buffers=[b"abc"])
        got = await ch.until(comm_of(comm_id, "comm_msg"), timeout=60)
        assert got[-1]["content"]["data"] == {"echo": {"small": 1}}
        assert got[-1]["buffers"] == [b"abc"]
        assert [m for m in got if m["msg_type"] == "comm_msg" and "big" in str(
            m["content"])] == []
        buffers_chain.gateway.wait_for_log(
            r"a comm_msg for kernel \S+ was refused: the comm_msg is \d+ bytes with its "
            r"buffers, over the limit of a client's comm message, 1 MiB")
    finally:
        await ch.close()


async def test_a_file_a_cell_writes_carries_no_buffers(buffers_chain: Any) -> None:
    """Only comm messages carry buffers to a Jupyter client: the display_data that announces
    a file a built-in session's cell wrote (its bytes in the bus message's buffers, for the
    page's file URL) comes live without them, as from the store."""
    kernel_id = start_kernel(buffers_chain, "python")
    ch = await Channels.open(buffers_chain.port, kernel_id, binary=True)
    try:
        msgs = await ch.execute("open('a.txt', 'w').write('abc')", timeout=60)
        shown = [m for m in msgs if m["msg_type"] == "display_data"]
        assert [m["content"]["data"].get("text/plain") for m in shown] == ["a.txt"], msgs
        assert shown[0]["buffers"] == []
    finally:
        await ch.close()


async def test_an_ipywidgets_image_carries_its_bytes_both_ways(buffers_chain: Any) -> None:
    """ipywidgets' Image: its model's bytes arrive as the comm_open's buffer (at its
    buffer_paths), and bytes the client sets (an update with a buffer) become the kernel's
    ``value``, as a widget manager does it."""
    kernel_id = start_kernel(buffers_chain, "python3")
    ch = await Channels.open(buffers_chain.port, kernel_id, binary=True)
    try:
        msgs = await ch.execute("import ipywidgets as w\n"
                                "img = w.Image(value=bytes(range(256)), format='png')\n"
                                "display(img)", timeout=60)
        opened = [m for m in msgs if m["msg_type"] == "comm_open" and m["content"]["data"][
            "state"].get("_model_name") == "ImageModel"]
        assert len(opened) == 1, [m["msg_type"] for m in msgs]
        assert opened[0]["content"]["data"]["buffer_paths"] == [["value"]]
        assert opened[0]["buffers"] == [bytes(range(256))]
        comm_id = opened[0]["content"]["comm_id"]
        new = b"\x89PNG\r\n\x1a\n" + bytes(range(255, -1, -1))
        moved = await ch.send("comm_msg", {"comm_id": comm_id, "data": {
            "method": "update", "state": {}, "buffer_paths": [["value"]]}}, buffers=[new])
        await ch.until(lambda m: m["msg_type"] == "status" and m["content"][
            "execution_state"] == "idle" and m["parent_header"].get("msg_id") == moved[
            "header"]["msg_id"])
        done = await ch.execute("print(img.value == %r)" % new)
        assert [m["content"]["text"] for m in done if m["msg_type"] == "stream"] == ["True\n"]
    finally:
        await ch.close()


async def kernel_sending(chain: Any, size: int, broker: tuple[str, ...] = (),
                        device: tuple[str, ...] = ()) -> tuple[Channels, list[dict[str, Any]]]:
    """A python3 kernel on a chain with those options, the messages of its comm's send of
    ``size`` bytes in one buffer, and its channels socket (to close)."""
    require_kernel("python3")
    chain.start_broker(*broker)
    chain.start_device("--kernels", "python,python3", *device)
    chain.start_gateway()
    ch = await Channels.open(chain.port, start_kernel(chain, "python3"), binary=True)
    try:
        return ch, await ch.execute("from comm import create_comm\n"
                                    "c = create_comm(target_name='t', data={})\n"
                                    f"c.send({{}}, buffers=[bytes({size})])", timeout=60)
    except BaseException:
        await ch.close()
        raise


async def test_a_kernels_buffers_count_as_its_output(chain: Any) -> None:
    """A kernel comm's buffers are output like printed text: past the device's --max-output
    (64 KiB here) the run is stopped, and the client reads the limit in words."""
    ch, msgs = await kernel_sending(chain, 100_000, device=("--max-output", "65536"))
    try:
        errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
        assert [e["ename"] for e in errors] == ["OutputLimitExceeded"], msgs
        assert "more than 64 KiB" in errors[0]["evalue"]
        assert [m for m in msgs if m["msg_type"] == "comm_msg"] == []
    finally:
        await ch.close()


async def test_a_kernels_stored_buffers_count_toward_the_users_bytes(chain: Any) -> None:
    """Buffers a kernel comm sent are bytes the store keeps for the user: past the broker's
    --user-output (1 MiB here), the user's next run is refused with the limit in words."""
    ch, msgs = await kernel_sending(chain, 1_200_000, broker=("--user-output", str(2**20)))
    try:
        assert [len(b) for m in msgs if m["msg_type"] == "comm_msg" for b in m["buffers"]] \
            == [1_200_000]
        refused = await ch.execute("1")
        replies = [m["content"] for m in refused if m["msg_type"] == "execute_reply"]
        assert replies and replies[0]["status"] == "error", refused
        assert "--user-output 1 MiB" in replies[0]["evalue"], replies
    finally:
        await ch.close()

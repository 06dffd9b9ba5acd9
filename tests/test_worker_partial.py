"""A worker that dies in the middle of a record on its link: what it sent whole before is kept
once, the half record is dropped (never shown, never taken for a record), its running cell
ends with the error of its death (WorkerDied naming its exit code or signal, as for any
death), and the session's next cell runs in a fresh worker. A half record at the end of the
stream is what any death while writing leaves (a worker killed for memory while it wrote a
big image); the device took it for a record the worker forged, and told the user the worker
"sent the device malformed data and was stopped", hiding the real cause. Real device,
real workers running plain user code that writes onto its own link, a signed client for the
broker."""

from __future__ import annotations

import pytest

from harness import BusClient, NodeProcess, stdout_of, worker_pid
from test_link_amplification import errors
from test_link_malformed import FIND_LINK, GOOD, fresh_worker, unique

#: Python for what the dying worker leaves on its link after one good record: a header
#: that promises 100 bytes and 10 of them, or only 2 of the 4 header bytes.
HALVES = {
    "body cut": "struct.pack('!I', 100) + b'x' * 10",
    "header cut": "struct.pack('!I', 100)[:2]",
}


#: How the worker dies, and the words its error names that by.
DEATHS = {"exit": ("os._exit(3)", "exited with code 3"),
          "sigkill": ("os.kill(os.getpid(), 9)", "was killed by signal 9 (SIGKILL)")}


@pytest.mark.parametrize("death", list(DEATHS))
@pytest.mark.parametrize("half", list(HALVES), ids=list(HALVES))
def test_a_worker_dying_inside_a_record_keeps_what_it_sent_whole(device_with_client,
                                                                 half: str, death: str) -> None:
    client, device = device_with_client()
    client: BusClient
    device: NodeProcess
    for round_ in range(3):  # a few rounds: each a fresh worker, each dies the same way
        code = FIND_LINK + GOOD + (
            f"link().sendall(frame(msgpack.packb(OK)) + {HALVES[half]})\n"
            f"import os\n{DEATHS[death][0]}\n")
        msgs = unique(client.run(code, "s", timeout=30))
        assert stdout_of(msgs) == "accepted\n", (round_, msgs)
        errs = errors(msgs)
        assert errs == [f"WorkerDied: the session's worker process {DEATHS[death][1]} while "
                        "running this cell"], (round_, errs)
        assert msgs[-1]["msg_type"] == "status", round_
        pid = worker_pid(device, "s")
        after = unique(client.run("print('after')", "s", timeout=30))
        assert stdout_of(after) == "after\n" and not errors(after), (round_, after)
        fresh_worker(device, "s", pid)
    assert device.proc.poll() is None
    assert "Traceback" not in device.log


async def test_a_link_reset_by_a_dead_worker_is_its_end_not_an_error() -> None:
    """Tests that the overseer's end of a link whose worker died with bytes the overseer had
    sent it unread (the kernel answers the next read with ECONNRESET) reads that as the end
    of the stream, as at EOF (before: ConnectionResetError escaped the worker's record pump,
    and the device's log had 'Task exception was never retrieved' and a traceback; seen in
    bench/chaos.py --faults template-kill), and that a reset inside a record is a LinkCut."""
    import socket

    from protocol.link import LinkCut, OverseerLink, encode
    for cut in (False, True):
        ours, theirs = socket.socketpair()
        link = await OverseerLink.open(ours)
        if cut:
            theirs.sendall(encode({"msg_type": "stream", "content": {}})[:6])
        await link.send({"msg_type": "execute_request", "content": {}})  # never read
        theirs.close()  # the worker dies
        if cut:
            with pytest.raises(LinkCut):
                await link.recv()
        else:
            assert await link.recv() is None
        link.close()

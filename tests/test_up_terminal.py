"""``bin/cellbus up`` in a real terminal (a pty): Ctrl-C typed there, which the terminal sends
as SIGINT to its whole foreground process group, stops the nodes in `up`'s order and loses
no output of the cells that finish while devices drain."""

from __future__ import annotations

import os
import pty
import re
import sys
from pathlib import Path

import pytest

from harness import Chain, NodeProcess, free_port

#: Runs in the pty's session: it becomes the terminal's controlling process, as a shell is.
IN_TERMINAL = ("import fcntl, os, sys, termios\n"
               "fd = os.open(sys.argv[1], os.O_RDWR)\n"
               "fcntl.ioctl(fd, termios.TIOCSCTTY, 0)\n"
               "os.dup2(fd, 0)\n"
               "os.execv(sys.argv[2], sys.argv[2:])\n")
LINES = 16
CELL = (f"import time\nfor i in range({LINES}):\n    print('line', i, flush=True)\n"
        "    time.sleep(0.25)")


def up_in_terminal(tty: str, tmp_path: Path, port: int) -> NodeProcess:
    return NodeProcess("up", "--port", str(port), "--store", f"sqlite:///{tmp_path / 'up.db'}",
                       "--key-file", str(tmp_path / "bus.key"),
                       env={"XDG_RUNTIME_DIR": str(tmp_path)},
                       wrap=[sys.executable, "-c", IN_TERMINAL, tty])


@pytest.mark.parametrize("how", ["ctrl-c", "hangup"])
def test_ctrl_c_in_a_terminal_stops_gateway_devices_broker_in_order_and_loses_nothing(
        tmp_path: Path, nodes: list[NodeProcess], how: str) -> None:
    """Tests that Ctrl-C typed in up's terminal (or the terminal closed: SIGHUP) while a cell
    prints stops the gateway, then the device (which lets the cell finish), then the broker,
    and that every line the cell printed while the device drained is in the store (seen by
    the next `up`). A second Ctrl-C is answered in a line (it was ignored without a word)
    and changes nothing."""
    master, slave = pty.openpty()
    try:
        port = free_port()
        up = up_in_terminal(os.ttyname(slave), tmp_path, port)
        nodes.append(up)
        up.wait_for_log(rf"cellbus is up: http://127.0.0.1:{port}/", timeout=60)
        assert os.tcgetpgrp(master) == up.proc.pid  # up runs in the terminal's foreground
        chain = Chain(tmp_path / "bus.key", "unused", nodes)
        chain.port = port
        assert chain.evaluate("u/ws/1", CELL)[0] == 202
        seen = ""
        while "line 2\n" not in seen:
            doc = chain.update("u/ws/1", wait=10)[1]
            seen = doc["output"].get("stdout_0", {}).get("content", "")
        os.close(slave)
        if how == "ctrl-c":
            os.write(master, b"\x03")  # as typed
            up.wait_for_log(r"cellbus up: stopping the gateway")
            os.write(master, b"\x03")  # again, impatient: said, and changes nothing
            up.wait_for_log(r"cellbus up: still stopping, in order .*Ctrl-C again does not")
        else:
            os.close(master)  # the terminal window closed
        assert up.proc.wait(60) == 0
    finally:
        for fd in (master, slave):
            try:
                os.close(fd)
            except OSError:
                pass
    stops = [m.group(1) for m in re.finditer(r"cellbus\.(\w+)(?:\[[^]]*\])? INFO \w+ stopped",
                                             up.log)]
    assert stops == ["gateway", "device", "broker"], up.log
    assert "got SIGINT" not in up.log and "got SIGHUP" not in up.log  # they were for `up`
    assert " ERROR " not in up.log and "Traceback" not in up.log, up.log

    again = NodeProcess("up", "--port", str(port), "--store", f"sqlite:///{tmp_path / 'up.db'}",
                        "--key-file", str(tmp_path / "bus.key"),
                        env={"XDG_RUNTIME_DIR": str(tmp_path)})
    nodes.append(again)
    again.wait_for_log(rf"cellbus is up: http://127.0.0.1:{port}/", timeout=60)
    doc = chain.wait_done("u/ws/1")
    assert doc["status"] == "done", doc
    assert doc["output"]["stdout_0"]["content"] == "".join(f"line {i}\n" for i in range(LINES))

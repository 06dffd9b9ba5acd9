"""device.template as its own process, driven over its control channel as the launcher does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack

ROOT = Path(__file__).resolve().parent.parent


def recv(control: socket.socket, timeout: float = 30) -> tuple[dict[str, Any], list[int]]:
    control.settimeout(timeout)
    data, fds, _, _ = socket.recv_fds(control, 65536, 4)
    return msgpack.unpackb(data), fds


def start_template() -> tuple[socket.socket, subprocess.Popen[str]]:
    """A template process without a sandbox, and our end of its control channel."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    template = subprocess.Popen(
        [sys.executable, "-P", "-m", "device.template", "--control-fd", str(theirs.fileno()),
         "--sandbox", "off"], pass_fds=(theirs.fileno(),), cwd=ROOT, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    theirs.close()
    return ours, template


def ready(control: socket.socket) -> dict[str, Any]:
    """The template's first record after those saying what it is loading."""
    while (record := recv(control)[0])["op"] == "loading":
        pass
    return record


def wait_stopped(pid: int, timeout: float = 10) -> None:
    """Until ``pid`` is in state T (stopped by SIGSTOP)."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, f"process {pid} did not stop"
        time.sleep(0.005)


def test_a_worker_exit_reported_after_the_device_closed_the_channel_ends_quietly(
        tmp_path: Path) -> None:
    """A device that stops closes the control channel; a worker exiting at that moment makes
    the template report to a closed channel. It must end as at end of stream (exit 0, no
    traceback in the device's log), not die on the broken pipe."""
    ours, template = start_template()
    try:
        assert ready(ours)["op"] == "ready"
        ours.send(msgpack.packb({"op": "fork", "id": 1, "workdir": str(tmp_path)}))
        forked, fds = recv(ours)
        assert forked["op"] == "forked" and len(fds) == 1
        os.close(fds[0])
        # Stopped, the template sees both at once when it resumes: the worker's exit to
        # report, and the channel the device has closed.
        template.send_signal(signal.SIGSTOP)
        wait_stopped(template.pid)
        ours.close()
        os.kill(forked["pid"], signal.SIGKILL)
        template.send_signal(signal.SIGCONT)
        output, _ = template.communicate(timeout=30)
    finally:
        if template.poll() is None:
            template.kill()
            template.wait()
    assert template.returncode == 0, output
    assert "Traceback" not in output


def test_a_template_whose_device_left_before_it_was_ready_ends_quietly() -> None:
    """A device stopped while its template starts (say, a new one after the old was killed)
    has closed the control channel before the template says what it loads: the template
    ends as at end of stream (exit 0, nothing written), not on a BrokenPipeError traceback
    that lands in the device's log."""
    ours, template = start_template()
    ours.close()
    try:
        output, _ = template.communicate(timeout=30)
    finally:
        if template.poll() is None:
            template.kill()
    assert template.returncode == 0 and output == "", output

"""``bin/cellbus up``: one command runs the whole system, and stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness import NodeProcess, free_port, free_ports
from protocol.config import generate_key
from protocol.rekey import rotate


def children_of(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


def printed(port: int, code: str) -> str:
    """What ``code`` printed, evaluated over HTTP in cell me/ws/1 of the gateway on ``port``."""
    base = f"http://127.0.0.1:{port}/home/me/ws/1"
    req = urllib.request.Request(f"{base}/evaluate", data=json.dumps({"input": code}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 202
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/update?wait=5", timeout=10) as resp:
            doc = json.load(resp)
        if doc["status"] == "done":
            break
    return str(doc["output"]["stdout_0"]["content"])


def logged_requests(up: NodeProcess, port: int) -> list[str]:
    """The access lines in ``up``'s terminal, up to that of a request that answers 404 (a
    warning in every mode), made now: each line before it is in by then."""
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/no-such-page", timeout=10)
    missing.value.close()
    up.wait_for_log(r"tornado\.access WARNING 404 GET /no-such-page ")
    return [line for line in up.log.splitlines() if " tornado.access " in line]


def test_up_runs_the_chain_and_stops_every_node(tmp_path: Path, nodes) -> None:
    port = free_port()
    up = NodeProcess("up", "--port", str(port), "--devices", "2",
                     "--store", f"sqlite:///{tmp_path / 'up.db'}",
                     env={"XDG_RUNTIME_DIR": str(tmp_path)})  # its state file stays here
    nodes.append(up)
    up.wait_for_log(rf"cellbus is up: http://127.0.0.1:{port}/", timeout=60)
    assert printed(port, "print(6*7)") == "42\n"
    # The evaluate and its polls went well: not one access line of them in the terminal.
    assert [line for line in logged_requests(up, port) if "/home/me/" in line] == []
    # A refused request is one line, its access line, with the reason on it (it was two).
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{port}/home/me/nothing", method="DELETE"), timeout=10)
    refused.value.close()
    up.wait_for_log(r"404 DELETE /home/me/nothing .*ms: ")
    about = [line for line in up.log.splitlines() if "/home/me/nothing" in line]
    assert len(about) == 1 and "nothing stored" in about[0], about

    kids = children_of(up.proc.pid)
    assert len(kids) == 4  # broker, two devices, gateway
    key_file = next(arg for pid in kids for arg in
                    Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:]
                    if arg.endswith(b"bus.key"))
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600

    assert up.stop(signal.SIGTERM, timeout=30) == 0
    for pid in kids:
        assert (not Path(f"/proc/{pid}").exists()
                or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2])
    assert not os.path.exists(key_file)  # the runtime directory is removed
    assert "Traceback" not in up.log
    up.wait_for_log(r"broker stopped")


def test_up_passes_node_options_from_the_environment_and_stops_on_ctrl_c_quietly(
        tmp_path: Path, nodes) -> None:
    """Tests that device options `up` has no flag for (--max-sessions, and a uid range for
    that many) reach the device through their CELLBUS_* variables, and that Ctrl-C (SIGINT
    to the whole process group, as a terminal sends it) logs no ERROR and no traceback."""
    port = free_port()
    up = NodeProcess("up", "--port", str(port), "--store", f"sqlite:///{tmp_path / 'up.db'}",
                     env={"XDG_RUNTIME_DIR": str(tmp_path), "CELLBUS_MAX_SESSIONS": "1100",
                          "CELLBUS_PREFORK": "1", "CELLBUS_SANDBOX_UIDS": "500000-501200",
                          # what `up` gives as a flag wins, so `up` does not refuse it
                          "CELLBUS_BROKER_DEVICE_BIND": "nowhere"})
    nodes.append(up)
    up.wait_for_log(r"cellbus is up", timeout=60)
    up.wait_for_log(r"device \S+: up to 1100 sessions, 1 preforked")
    os.killpg(up.proc.pid, signal.SIGINT)
    assert up.proc.wait(30) == 0
    up.wait_for_log(r"broker stopped")
    assert " ERROR " not in up.log and "Traceback" not in up.log


def test_a_device_with_more_places_than_uids_refuses_to_start(tmp_path: Path, key_file) -> None:
    """Tests that a device told to run more sessions than its uid range has uids for says so
    in one line and exits 2, instead of failing every session past the range later."""
    device = NodeProcess("device", "--connect", f"ipc://{tmp_path / 'dev'}",
                         "--key-file", str(key_file), "--max-sessions", "1100",
                         "--sandbox-uids", "300000-300999")
    try:
        assert device.proc.wait(30) == 2
        device.wait_for_log(r"--sandbox-uids 300000-300999 gives 1000 uids, but --max-sessions "
                            r"1100, --prefork 2 and --kernel-prefork \d+ need up to 1102")
        assert "Traceback" not in device.log
    finally:
        device.kill_group()


def test_up_stops_on_sigint_even_when_started_with_sigint_ignored(tmp_path: Path,
                                                                   nodes) -> None:
    """A shell script's background job (`bin/cellbus up &`), nohup and some supervisors
    start a program with SIGINT ignored, and Python then never raises KeyboardInterrupt:
    `kill -INT` must still stop `up` and its nodes in order (it did nothing before)."""
    port = free_port()
    up = NodeProcess("up", "--port", str(port), "--store", f"sqlite:///{tmp_path / 'up.db'}",
                     env={"XDG_RUNTIME_DIR": str(tmp_path)},
                     wrap=["sh", "-c", 'trap "" INT; exec "$@"', "sh"])
    nodes.append(up)
    up.wait_for_log(r"cellbus is up", timeout=60)
    kids = children_of(up.proc.pid)
    os.kill(up.proc.pid, signal.SIGINT)
    assert up.proc.wait(30) == 0
    up.wait_for_log(r"broker stopped")
    assert all(not Path(f"/proc/{pid}").exists()
               or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2] for pid in kids)


def test_up_on_port_0_runs_on_a_free_port_that_its_url_names(tmp_path: Path, nodes) -> None:
    """Tests that ``up --port 0`` (any free port) starts, says a URL with the port its
    gateway listens on, and a cell runs there: it stopped with "the gateway is not listening
    on port 0" before. With ``--log-requests`` its gateway logs every request at INFO. Its
    key file is in a rotation (an ``accept`` line, README's "Rotating keys and
    certificates"): `up` asked the broker whether its devices were there signing with the
    whole file, was not heard, and printed the URL only after 60 s, "starting anyway"."""
    key_file = tmp_path / "bus.key"
    generate_key(key_file)
    assert rotate(key_file, "next")
    up = NodeProcess("up", "--port", "0", "--store", f"sqlite:///{tmp_path / 'up.db'}",
                     "--key-file", str(key_file), "--log-requests",
                     env={"XDG_RUNTIME_DIR": str(tmp_path)})
    nodes.append(up)
    url = up.wait_for_log(r"cellbus is up: (http://127\.0\.0\.1:(\d+)/)", timeout=60)
    assert "dropped a message" not in up.log and "starting anyway" not in up.log, up.log
    port = int(url.group(2))
    assert port > 0 and f"gateway listening on http://127.0.0.1:{port}/" in up.log
    assert printed(port, "print(6*7)") == "42\n"
    lines = logged_requests(up, port)
    assert any(" INFO 202 POST /home/me/ws/1/evaluate " in line for line in lines), lines
    assert any(" INFO 200 GET /home/me/ws/1/update?wait=5 " in line for line in lines), lines
    assert up.stop(signal.SIGINT, timeout=30) == 0


def metrics_of(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def test_up_serves_the_metrics_of_its_broker_and_each_device_on_ports_in_a_row(
        tmp_path: Path, nodes) -> None:
    """Tests that CELLBUS_METRICS_PORT=P (or --metrics-port P) gives `up`'s broker P and its
    devices P+1, P+2, ...: every node read the one variable before, the devices found the
    broker on P, and `up` stopped ("device1 exited with status 2")."""
    first, port = free_ports(3), free_port()
    up = NodeProcess("up", "--port", str(port), "--devices", "2",
                     "--store", f"sqlite:///{tmp_path / 'up.db'}",
                     env={"XDG_RUNTIME_DIR": str(tmp_path), "CELLBUS_METRICS_PORT": str(first)})
    nodes.append(up)
    up.wait_for_log(r"cellbus is up", timeout=60)
    assert "cellbus_devices 2.0" in metrics_of(first)
    for device in (first + 1, first + 2):
        assert "cellbus_device_outbox_bytes" in metrics_of(device)
    assert up.stop(signal.SIGINT, timeout=30) == 0


def test_up_with_a_metrics_port_in_use_stops_before_starting_anything(tmp_path: Path) -> None:
    """Tests that a port of --metrics-port's row that is taken (here the second device's)
    stops `up` in one line naming it and the option, before any node starts, as --port
    does; before, the broker and the first device started, and `up` then said only that
    a device exited."""
    first = free_ports(3)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first + 2))
        taken.listen()
        up = NodeProcess("up", "--port", str(free_port()), "--devices", "2",
                         "--store", f"sqlite:///{tmp_path / 'up.db'}",
                         env={"XDG_RUNTIME_DIR": str(tmp_path),
                              "CELLBUS_METRICS_PORT": str(first)})
        try:
            assert up.proc.wait(30) == 2
        finally:
            up.kill_group()
    up.wait_for_log(rf"cellbus up: .*port {first + 2}.* --metrics-port")
    assert "broker started" not in up.log and "Traceback" not in up.log


def test_up_with_a_node_variable_its_node_refuses_stops_before_starting_anything(
        tmp_path: Path) -> None:
    """Tests that a CELLBUS_* variable that one of the nodes `up` starts would refuse (issue
    25: a device's --max-sessions, given as README says) stops `up` in that node's one line,
    status 2, before any node starts, as a bad flag of `up` does; before, the broker started,
    the device exited with status 2 and `up` stopped the broker again (nine lines, status 1)."""
    up = NodeProcess("up", "--port", str(free_port()),
                     "--store", f"sqlite:///{tmp_path / 'up.db'}",
                     env={"XDG_RUNTIME_DIR": str(tmp_path), "CELLBUS_MAX_SESSIONS": "0"})
    try:
        assert up.proc.wait(30) == 2
    finally:
        up.kill_group()
    assert up.log.strip() == ("cellbus device: error: CELLBUS_MAX_SESSIONS: a whole number, 1 "
                              "or more, not 0 (as for --max-sessions)"), up.log
    assert not (tmp_path / "up.db").exists()


def test_up_splits_a_sandbox_uid_range_from_the_environment_among_its_devices(
        tmp_path: Path, nodes) -> None:
    """Tests that CELLBUS_SANDBOX_UIDS=FIRST-LAST with --devices 2 gives each device half of
    the range, as CELLBUS_MEMORY_BUDGET's default is split: both devices read the whole range
    before, the second was refused for overlapping the first, and `up` stopped."""
    up = NodeProcess("up", "--port", str(free_port()), "--devices", "2",
                     "--store", f"sqlite:///{tmp_path / 'up.db'}",
                     env={"XDG_RUNTIME_DIR": str(tmp_path),
                          "CELLBUS_SANDBOX_UIDS": "710000-711999"})
    nodes.append(up)
    up.wait_for_log(r"cellbus is up", timeout=60)
    for uids in ("710000-710999", "711000-711999"):
        up.wait_for_log(rf"device session uids {uids} \(--sandbox-uids {uids}\)")
    assert up.stop(signal.SIGINT, timeout=30) == 0

"""``--log-file``: a node started by hand, outside systemd, logs to a file of the operator's,
which logrotate may move away (the node goes on in a new file at the same path). Before,
nodes logged to stderr only and an operator had to redirect each one."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from harness import Chain, NodeProcess, until


def test_a_broker_logs_to_its_file_and_follows_a_rotation(chain: Chain,
                                                          tmp_path: Path) -> None:
    """Tests that a broker with --log-file writes its lines there (not to stderr), that
    after the file is moved away (as logrotate does) its next lines go to a new file at the
    same path, and that the SIGHUP of a logrotate ``postrotate`` has it reopen the file and
    go on; before, SIGHUP's default action ended it at once, with no line, its store's
    queued writes not committed (as a kill -9)."""
    log = tmp_path / "logs" / "broker.log"
    log.parent.mkdir()
    broker = chain._start("broker", "--store", chain.store, "--insecure-bus", "--log-file",
                          str(log), "--gateway-bind", chain.gateway_ep, "--device-bind",
                          chain.device_ep, "--publish-bind", chain.publish_ep)
    until(lambda: log.exists() and "broker started" in log.read_text(), "broker started")
    assert "broker started" not in broker.log
    os.rename(log, log.with_suffix(".log.1"))
    broker.proc.send_signal(signal.SIGHUP)
    until(lambda: log.exists() and "got SIGHUP" in log.read_text(), "the SIGHUP line")
    assert "log file" in log.read_text() and "stopping" not in log.read_text()
    assert broker.proc.poll() is None
    assert broker.stop() == 0
    assert "broker stopped" in log.read_text()
    assert "broker stopped" not in log.with_suffix(".log.1").read_text()


def test_a_log_file_that_cannot_be_written_stops_the_node_in_one_line(
        key_file: Path, nodes: list[NodeProcess], tmp_path: Path) -> None:
    """Tests that a device given a --log-file in a folder that does not exist exits with
    status 2 and one line naming the file and the option."""
    device = NodeProcess("device", "--connect", "ipc:///nonexistent/broker", "--key-file",
                         str(key_file), "--log-file", str(tmp_path / "no" / "device.log"))
    nodes.append(device)
    assert device.proc.wait(30) == 2, device.log
    device.wait_for_log(rf"cannot write the log file {tmp_path / 'no' / 'device.log'} "
                        r"\(--log-file\): ")
    assert "Traceback" not in device.log


def test_a_log_file_a_node_makes_is_its_users_alone(chain: Chain, tmp_path: Path) -> None:
    """A node's log names users, worksheets and sessions and quotes what workers said; the
    file was made by the umask (0644: every account of the host, and session code where the
    file sits in a folder sessions see, read it). Now it is 0600, and so is the new file after
    a rotation; a file that exists keeps its mode (an operator's choice)."""
    log = tmp_path / "logs" / "broker.log"
    log.parent.mkdir()
    old = os.umask(0o022)
    try:
        broker = chain._start("broker", "--store", chain.store, "--insecure-bus", "--log-file",
                              str(log), "--gateway-bind", chain.gateway_ep, "--device-bind",
                              chain.device_ep, "--publish-bind", chain.publish_ep)
    finally:
        os.umask(old)
    until(lambda: log.exists() and "broker started" in log.read_text(), "broker started")
    assert log.stat().st_mode & 0o777 == 0o600
    os.rename(log, log.with_suffix(".log.1"))
    assert broker.stop() == 0
    assert log.stat().st_mode & 0o777 == 0o600  # the new file, made after the rotation
    kept = tmp_path / "logs" / "kept.log"
    kept.touch(0o640)
    kept.chmod(0o640)
    from protocol.logfile import PrivateFileHandler
    PrivateFileHandler(str(kept)).close()
    assert kept.stat().st_mode & 0o777 == 0o640


def test_sighup_reloads_a_node_that_logs_to_its_terminal_and_it_goes_on(chain: Chain) -> None:
    """Tests that a node logging to its terminal (or journal) takes SIGHUP as a reload, as
    with a --log-file: it reads its key files again, says so and goes on (a key rotation's
    SIGHUP must never stop a node); before, SIGHUP's default action ended it at once, with
    no line and status -1, and for a while it stopped the node gracefully."""
    gateway = chain.start_gateway(linked=False)
    gateway.proc.send_signal(signal.SIGHUP)
    gateway.wait_for_log(r"gateway got SIGHUP: its --key-file .* is unchanged")
    assert gateway.proc.poll() is None and "stopping" not in gateway.log
    assert gateway.stop() == 0

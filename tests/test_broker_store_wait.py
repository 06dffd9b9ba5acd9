"""A broker whose MongoDB does not answer at start says what it waits for, and tries again.

Before, a broker on ``--store mongodb://`` with nothing answering logged nothing for 30 s
(pymongo's server selection timeout), then exited, status 2, and ``bin/cellbus up`` waited
for it as long. Now each attempt is bounded, each failure is a WARNING naming the server and
what to check, ``--store-wait`` bounds the whole (default forever), SIGTERM ends the
waiting at once, and ``up`` gives its broker one attempt.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mongodb_server
from harness import CELLBUS, NodeProcess, free_port, node_env
from test_cli_unreachable import BOUND, run, unreachable

pytestmark = pytest.mark.timeout(60)
__all__ = ["unreachable"]  # the fixture, shared with test_cli_unreachable


@pytest.fixture
def key_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bus.key"
        assert subprocess.run([*CELLBUS, "key", str(path)], env=node_env(),
                              capture_output=True).returncode == 0
        yield path


def broker_argv(key_file: Path, store: str, *more: str) -> list[str]:
    run_dir = key_file.parent
    return ["broker", "--key-file", str(key_file), "--store", store,
            "--gateway-bind", f"ipc://{run_dir}/gw", "--device-bind", f"ipc://{run_dir}/dev",
            "--publish-bind", f"ipc://{run_dir}/pub", *more]


def test_a_broker_whose_mongodb_is_down_says_what_it_waits_for(key_file: Path,
                                                               unreachable: str) -> None:
    """Tests that a broker started while its MongoDB does not answer logs, within the bound,
    what it waits for and what to check, keeps trying (a second line), and stops at once on
    SIGTERM (status 0, as a broker stopped after start); before, it said nothing for 30 s
    and then exited. Each attempt is cut to the
    URL's serverSelectionTimeoutMS (1 s) to keep the test short."""
    node = NodeProcess(*broker_argv(key_file, f"{unreachable}?serverSelectionTimeoutMS=1000"))
    try:
        first = node.wait_for_log(r"WARNING broker store: cannot reach", timeout=BOUND).string
        assert unreachable.rsplit("/", 1)[0] in first and "Check that the server" in first
        assert "trying again" in first and "--store-wait" in first, first
        node.wait_for_log(r"still cannot reach it \(attempt 2, ", timeout=BOUND)
        began = time.monotonic()
        status = node.stop(signal.SIGTERM, timeout=BOUND)
        assert time.monotonic() - began < 3, node.log
        assert status == 0 and "stopped before its store answered" in node.log, node.log
        assert "Traceback" not in node.log and not os.path.exists(key_file.parent / "gw")
    finally:
        node.kill_group()


def test_a_broker_with_store_wait_gives_up_in_one_line(key_file: Path) -> None:
    """Tests that ``broker --store-wait 1`` on an unreachable MongoDB exits 2 within the bound,
    its last line naming the store; ``--store-wait 0`` tries once (each try cut to 1 s by the
    URL's serverSelectionTimeoutMS)."""
    url = f"mongodb://127.0.0.1:{free_port()}/cb?serverSelectionTimeoutMS=1000"
    for wait in ("0", "1"):
        done, took = run(*broker_argv(key_file, url, "--store-wait", wait))
        assert done.returncode == 2 and took < BOUND, (took, done.stderr)
        last = done.stderr.strip().splitlines()[-1]
        assert "ERROR broker cannot open its store" in last and "127.0.0.1" in last, last
        assert f"gave up after {wait} s" in last and "Traceback" not in done.stderr, last


def test_up_on_an_unreachable_mongodb_stops_within_the_bound(tmp_path: Path) -> None:
    """Tests that ``up --store`` on a MongoDB nothing answers stops within the bound, saying
    that its broker could not open the store, as ``up --help`` says; before, ``up`` waited 30 s
    for it."""
    url = f"mongodb://127.0.0.1:{free_port()}/cb"
    began = time.monotonic()
    try:
        done = subprocess.run([*CELLBUS, "up", "--port", "0", "--store", url], cwd=tmp_path,
                              env=node_env({"XDG_RUNTIME_DIR": str(tmp_path)}), text=True,
                              capture_output=True, timeout=BOUND + 5)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"up said nothing for {BOUND + 5:g} s: {e.stderr!r}") from None
    assert done.returncode == 1 and time.monotonic() - began < BOUND + 5
    assert "broker cannot open its store" in done.stderr and "127.0.0.1" in done.stderr
    assert "broker exited with status 2" in done.stderr, done.stderr
    helped, _ = run("up", "--help")
    assert "no answer within 5 s stops `up`" in " ".join(helped.stdout.split()), helped.stdout


@pytest.mark.mongodb
def test_a_broker_reaches_a_mongodb_that_comes_up_later(key_file: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that a broker started before its MongoDB (SecantusDB here, on the port the
    broker was given) opens the store once the server listens, says so, and starts: no
    restart needed."""
    port = free_port()
    node = NodeProcess(*broker_argv(
        key_file, f"mongodb://127.0.0.1:{port}/cb?replicaSet={mongodb_server.REPLICA_SET}"
                  "&serverSelectionTimeoutMS=1000"))
    server = None
    try:
        node.wait_for_log(r"WARNING broker store: cannot reach it", timeout=BOUND)
        monkeypatch.setattr(mongodb_server, "free_port", lambda: port)
        server = mongodb_server.own("replset")
        node.wait_for_log(r"INFO broker store: reached it at attempt \d+", timeout=BOUND)
        node.wait_for_log(r"INFO broker started", timeout=BOUND)
        assert node.stop() == 0, node.log
    finally:
        node.kill_group()
        if server is not None:
            server.stop()


def test_store_wait_takes_seconds_or_forever(key_file: Path) -> None:
    """Tests that ``--store-wait`` refuses what is neither seconds nor ``forever`` in one
    line naming both, before anything starts."""
    done, _ = run(*broker_argv(key_file, "mongodb://127.0.0.1:1/cb", "--store-wait", "soon"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "cellbus broker: error: argument --store-wait: a number of seconds, not 'soon' "
        "(or forever)"), done.stderr

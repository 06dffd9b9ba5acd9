"""``bin/cellbus user`` on a store that cannot be reached answers within a bound, in one line.

An outside tester's ``bin/cellbus user list --store mongodb://127.0.0.1:1/x`` printed nothing
for 30.6 s (pymongo's default server selection timeout), then one line. Each case here runs
the real command, with no MongoDB server: a port nothing listens on, or a listening socket
that never answers (a host that drops packets, as far as a client can tell). The broker's
side is tests/test_broker_store_wait.py.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.store import sqlite_url
from harness import CELLBUS, ROOT, free_port, node_env

pytestmark = pytest.mark.timeout(60)

#: What every case must answer within (the default bound is 5 s; start-up on a slow machine).
BOUND = 10.0


@pytest.fixture(params=["nothing listening", "never answers"])
def unreachable(request: pytest.FixtureRequest) -> Iterator[str]:
    """A ``mongodb://`` URL of a port nothing listens on, or of a socket that accepts
    connections and never says a word."""
    if request.param == "nothing listening":
        yield f"mongodb://127.0.0.1:{free_port()}/cb"
        return
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes handshakes; nobody reads or answers
        yield f"mongodb://127.0.0.1:{silent.getsockname()[1]}/cb"


def run(*argv: str, bound: float = BOUND) -> tuple[subprocess.CompletedProcess[str], float]:
    """``cellbus ARGV``; fails the test, naming the command, if it runs past ``bound``."""
    began = time.monotonic()
    try:
        done = subprocess.run([*CELLBUS, *argv], cwd=ROOT, env=node_env(), text=True,
                              capture_output=True, timeout=bound)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"cellbus {' '.join(argv)} said nothing for {bound:g} s "
                             f"(stderr so far: {e.stderr!r})") from None
    return done, time.monotonic() - began


def assert_one_line_about(done: subprocess.CompletedProcess[str], url: str) -> str:
    """The command failed with status 2 in one line naming the server and what to check."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    line = done.stderr
    assert line.count("\n") == 1 and "Traceback" not in line, line
    assert url.rsplit("/", 1)[0].removeprefix("mongodb://") in line, line
    assert "Check that the server runs" in line, line
    return line


def test_user_list_gives_up_on_an_unreachable_mongodb_within_5_s(unreachable: str) -> None:
    """Tests that ``user list`` on a MongoDB store nothing answers ends within its default
    bound (5 s, said in the line) with one line naming the server; before, it was silent for
    30 s."""
    check_default_bound(["list"], unreachable)


@pytest.mark.parametrize("command", [["add", "ann"], ["remove", "ann"]])
def test_user_add_and_remove_give_up_within_5_s(command: list[str]) -> None:
    """Tests that ``user add`` and ``user remove`` are bounded as ``list`` is (a port nothing
    listens on: the other kind of silence is ``list``'s case)."""
    check_default_bound(command, f"mongodb://127.0.0.1:{free_port()}/cb")


def check_default_bound(command: list[str], unreachable: str) -> None:
    done, took = run("user", *command, "--store", unreachable)
    line = assert_one_line_about(done, unreachable)
    assert line.startswith("cellbus user: ") and "within 5 s" in line, line
    assert took < 5 + 3, took


def test_user_timeout_option_sets_the_bound(unreachable: str) -> None:
    """Tests that ``user --timeout`` is the bound: 1 s gives up in about 1 s, and says 1 s."""
    done, took = run("user", "list", "--store", unreachable, "--timeout", "1")
    assert "within 1 s" in assert_one_line_about(done, unreachable)
    assert took < 1 + 3, took


def test_user_help_says_the_bound() -> None:
    """Tests that ``user list --help`` documents how long it waits for the store."""
    done, _ = run("user", "list", "--help")
    assert done.returncode == 0 and "--timeout" in done.stdout
    assert "default 5" in " ".join(done.stdout.split()), done.stdout


def test_user_on_a_sqlite_store_another_process_keeps_locked(tmp_path: Path) -> None:
    """Tests that ``user list`` on a SQLite store another process holds locked ends after the
    store's busy timeout (5 s) in one line that says another process holds it and what to
    do; before, the line said only "database is locked"."""
    store = sqlite_url(tmp_path / "cellbus.db")
    made, _ = run("user", "add", "ann", "--store", store)
    assert made.returncode == 0, made.stderr
    holder = sqlite3.connect(tmp_path / "cellbus.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        done, took = run("user", "list", "--store", store)
    finally:
        holder.close()
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    line = done.stderr
    assert line.startswith(f"cellbus user: cannot open SQLite store {tmp_path}/cellbus.db: "), line
    assert "another process" in line and "5 s" in line and "try again" in line, line
    assert took < 5 + 3, took

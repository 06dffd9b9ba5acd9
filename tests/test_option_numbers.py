"""A number (or an endpoint) an option cannot take is refused before anything starts, in one
sentence naming the option. Before, ``type=int`` and ``type=float`` took ``--max-sessions
-3``, ``--prefork -1``, ``--drain-timeout -5`` and ``--idle-timeout nan`` without a word
(``up`` then said "cells running get -5 s to finish"), ``up --devices -1`` ran with no
device, and ``broker --feed-hwm -1`` ended in a traceback from ZeroMQ."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import CELLBUS, ROOT, node_env
from protocol.numbers import times

#: (command and its other options, the option, a value it must refuse, its variable)
REFUSED = [
    (["device", "--connect", "ipc:///nowhere"], "--max-sessions", "-3", "CELLBUS_MAX_SESSIONS"),
    (["device", "--connect", "ipc:///nowhere"], "--max-sessions", "0", "CELLBUS_MAX_SESSIONS"),
    (["device", "--connect", "ipc:///nowhere"], "--prefork", "-1", "CELLBUS_PREFORK"),
    (["device", "--connect", "ipc:///nowhere"], "--drain-timeout", "-5",
     "CELLBUS_DRAIN_TIMEOUT"),
    (["device", "--connect", "ipc:///nowhere"], "--idle-timeout", "nan", "CELLBUS_IDLE_TIMEOUT"),
    (["device", "--connect", "ipc:///nowhere"], "--exec-timeout", "inf", "CELLBUS_EXEC_TIMEOUT"),
    (["device", "--connect", "ipc:///nowhere"], "--output-rate", "0", "CELLBUS_OUTPUT_RATE"),
    (["device", "--connect", "ipc:///nowhere"], "--max-memory", "lots", "CELLBUS_MAX_MEMORY"),
    (["broker"], "--feed-hwm", "-1", "CELLBUS_FEED_HWM"),
    (["gateway"], "--max-input", "-1", "CELLBUS_MAX_INPUT"),
    (["up"], "--devices", "-1", "CELLBUS_DEVICES"),
    (["up"], "--drain-timeout", "-5", "CELLBUS_DRAIN_TIMEOUT"),
    (["up"], "--idle-timeout", "0", "CELLBUS_IDLE_TIMEOUT"),
    (["status"], "--timeout", "-1", None),
]


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CELLBUS, *argv], env=node_env(env), cwd=ROOT, capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("argv", "option", "value", "variable"), REFUSED,
                         ids=[f"{a[0]}{o}={v}" for a, o, v, _ in REFUSED])
def test_a_number_an_option_cannot_take_is_refused_in_one_line(
        argv: list[str], option: str, value: str, variable: str | None, key_file: Path,
        tmp_path: Path) -> None:
    """Tests that the flag, and its CELLBUS_* variable alike, stop the command with status 2
    and a line naming the option and the value, and no traceback."""
    # A key and a state folder of its own: nothing but the number may stop it (an `up`
    # that took it would run, on free ports, until the test's timeout).
    base = {"CELLBUS_KEY_FILE": str(key_file), "XDG_RUNTIME_DIR": str(tmp_path),
            "CELLBUS_GATEWAY_PORT": "0", "CELLBUS_STORE": f"sqlite:///{tmp_path / 'c.db'}"}
    flag = run(*argv, option, value, env=base)
    assert flag.returncode == 2, (flag.stdout, flag.stderr)
    assert f"argument {option}: " in flag.stderr and value in flag.stderr, flag.stderr
    assert flag.stderr.count("\n") == 1, flag.stderr  # argparse's usage went before it
    assert "Traceback" not in flag.stderr, flag.stderr
    if variable is None:  # an option with no variable
        return
    by_env = run(*argv, env={**base, variable: value})
    assert by_env.returncode == 2, (variable, by_env.stdout, by_env.stderr)
    assert variable in by_env.stderr and "Traceback" not in by_env.stderr, by_env.stderr


ENDPOINTS = [
    (["device"], "--connect", "bogus"),
    (["device"], "--connect", "tcp://host-without-port"),
    (["gateway"], "--broker", "bogus"),
    (["broker"], "--gateway-bind", "localhost:5555"),
    (["status"], "--broker", "bogus"),
]


@pytest.mark.parametrize(("argv", "option", "value"), ENDPOINTS,
                         ids=[f"{a[0]}{o}={v}" for a, o, v in ENDPOINTS])
def test_an_endpoint_that_is_none_is_refused_as_such(
        argv: list[str], option: str, value: str, key_file: Path, tmp_path: Path) -> None:
    """Tests that text that is no ZeroMQ endpoint is refused in one line saying what an
    endpoint looks like. Before, ``bogus`` was "a TCP endpoint" that needs CURVE keys, and a
    TCP endpoint without its port failed later with ZeroMQ's "Invalid argument"."""
    out = run(*argv, option, value, "--insecure-bus",
              env={"CELLBUS_KEY_FILE": str(key_file), "XDG_RUNTIME_DIR": str(tmp_path)})
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert f"argument {option}: an endpoint is tcp://HOST:PORT or ipc:///PATH, not " \
           f"{value!r}" in out.stderr, out.stderr


@pytest.mark.parametrize(("option", "value", "says"), [
    ("--sandbox-uids", "400000-400001", "--sandbox-uids 400000-400001 gives 2 uids, but "),
    ("--backend", "no_such_module:X", "no_such_module"),
])
def test_what_a_device_refuses_after_parsing_is_one_line(
        option: str, value: str, says: str, key_file: Path) -> None:
    """Tests that what the device checks once its options are read (a uid range too small
    for its places, a backend it cannot load: ``CELLBUS_SANDBOX_UIDS=... bin/cellbus up``)
    is one line, as a bad flag: its whole usage, 23 lines, came first."""
    out = run("device", "--connect", "ipc:///nowhere", option, value,
              env={"CELLBUS_KEY_FILE": str(key_file)})
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.startswith("cellbus device: error: ") and says in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1, out.stderr


def test_a_tcp_endpoint_without_keys_names_its_option(key_file: Path) -> None:
    """Tests that a gateway given an ipc --broker, whose --subscribe is left at its TCP
    default, is told which option names the TCP endpoint it has no keys for (before: only
    the endpoint, which the operator never typed)."""
    out = run("gateway", "--broker", "ipc:///nowhere", "--port", "0",
              env={"CELLBUS_KEY_FILE": str(key_file)})
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "tcp://127.0.0.1:5557 (--subscribe) is a TCP endpoint" in out.stderr, out.stderr


def test_a_count_of_occurrences_reads_as_english() -> None:
    """``cellbus status`` said "(1 times, the last 67.3 s ago)" of a refusal seen once."""
    assert [times(n) for n in (1, 2, 10)] == ["once", "2 times", "10 times"]

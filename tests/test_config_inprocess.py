"""Option parsing in process (protocol/config.py): flag, CELLBUS_* variable, --config TOML
file and default, each put through the flag's own checks. tests/test_config.py runs the
real launchers; these pin the rules on a small parser, one call each."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from broker.quotas import CELL_OUTPUT, add_quota_options, quota_config
from protocol.config import add_option, parse_args


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cellbus gateway")
    add_option(p, "--config", help="TOML file")
    add_option(p, "--port", type=int, default=8888, node="gateway", help="port")
    add_option(p, "--auth", choices=["none", "token"], default="none", help="auth")
    add_option(p, "--verbose", action="store_true", help="chatty")
    add_option(p, "--allow-origin", action="append", help="origins")
    return p


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CELLBUS_CONFIG", "CELLBUS_GATEWAY_PORT", "CELLBUS_AUTH", "CELLBUS_VERBOSE",
                 "CELLBUS_ALLOW_ORIGIN"):
        monkeypatch.delenv(name, raising=False)


def test_flag_wins_over_variable_over_file_over_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cellbus.toml"
    config.write_text('auth = "token"\nverbose = true\nport = 1\n[gateway]\nport = 2\n'
                      '[broker]\nport = "not mine"\n')
    args = parse_args(parser(), ["--config", str(config)], node="gateway")
    assert (args.port, args.auth, args.verbose) == (2, "token", True)  # [gateway] wins
    monkeypatch.setenv("CELLBUS_GATEWAY_PORT", "3")
    monkeypatch.setenv("CELLBUS_ALLOW_ORIGIN", "https://a.example https://b.example")
    args = parse_args(parser(), ["--config", str(config)], node="gateway")
    assert args.port == 3 and args.allow_origin == ["https://a.example", "https://b.example"]
    args = parse_args(parser(), ["--config", str(config), "--port", "4"], node="gateway")
    assert args.port == 4
    monkeypatch.delenv("CELLBUS_GATEWAY_PORT")
    assert parse_args(parser(), [], node="gateway").port == 8888


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("CELLBUS_GATEWAY_PORT", "abc", "CELLBUS_GATEWAY_PORT: invalid int value: 'abc' "
                                    "(as for --port)"),
    ("CELLBUS_AUTH", "bogus", "CELLBUS_AUTH: invalid choice 'bogus' (as for --auth"),
    ("CELLBUS_VERBOSE", "maybe", "CELLBUS_VERBOSE: 'maybe' is not a yes or no"),
])
def test_a_bad_variable_is_one_line_and_status_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str,
        value: str, says: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exited:
        parse_args(parser(), [], node="gateway")
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("cellbus gateway: error: ") and says in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(("argv", "says"), [
    (["--prot", "1"], "unrecognized arguments: --prot 1 (`cellbus gateway --help` lists"),
    (["--port", "abc"], "argument --port: invalid int value: 'abc'"),
    (["--auth", "bogus"], "argument --auth: invalid choice: 'bogus'"),
])
def test_a_bad_flag_is_one_line_and_status_2(
        capsys: pytest.CaptureFixture[str], argv: list[str], says: str) -> None:
    """As a bad variable: argparse printed its whole usage above the line (13 lines for
    ``up``), which the README's "in one line naming the option" did not hold to."""
    with pytest.raises(SystemExit) as exited:
        parse_args(parser(), argv, node="gateway")
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("cellbus gateway: error: ") and says in err
    assert err.count("\n") == 1, err


@pytest.mark.parametrize(("text", "says"), [
    ("prot = 1\n", "unknown key 'prot': cellbus gateway has no --prot"),
    ("port = [1, 2]\n", "give one value for --port"),
    ("port = \n", "is not TOML"),
])
def test_a_bad_file_is_one_line_and_status_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, says: str) -> None:
    config = tmp_path / "cellbus.toml"
    config.write_text(text)
    with pytest.raises(SystemExit) as exited:
        parse_args(parser(), ["--config", str(config)], node="gateway")
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


def test_quota_options_reach_the_brokers_config(monkeypatch: pytest.MonkeyPatch) -> None:
    p = argparse.ArgumentParser()
    add_quota_options(p)
    monkeypatch.setenv("CELLBUS_USER_SESSIONS", "3")
    config = quota_config(parse_args(p, ["--user-output", "-5"]))
    assert (config.user_sessions, config.cell_output, config.user_output) == (3, CELL_OUTPUT, 0)

"""``--log-level`` in any case, from a flag, a CELLBUS_* variable or a --config file, as
operators write it (``log-level = "debug"``, ``CELLBUS_LOG_LEVEL=warning``), and ``WARN`` as
Python's logging spells it too. Before, each of these stopped the node ("invalid choice:
'debug'")."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from protocol.config import add_common_options, parse_args


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cellbus broker")
    add_common_options(p)
    return p


def test_the_log_level_is_taken_in_any_case_from_everywhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that a lower-case level is taken from the flag, the variable and the file, as
    the same level in capitals; WARN as WARNING; and that a level that is none still stops
    the node with status 2."""
    monkeypatch.delenv("CELLBUS_CONFIG", raising=False)
    monkeypatch.delenv("CELLBUS_LOG_LEVEL", raising=False)
    assert parse_args(parser(), ["--log-level", "debug"]).log_level == "DEBUG"
    assert parse_args(parser(), ["--log-level", "warn"]).log_level == "WARNING"
    config = tmp_path / "cellbus.toml"
    config.write_text('log-level = "error"\n')
    assert parse_args(parser(), ["--config", str(config)]).log_level == "ERROR"
    monkeypatch.setenv("CELLBUS_LOG_LEVEL", "warning")
    assert parse_args(parser(), ["--config", str(config)]).log_level == "WARNING"
    with pytest.raises(SystemExit) as stopped:
        parse_args(parser(), ["--log-level", "loud"])
    assert stopped.value.code == 2

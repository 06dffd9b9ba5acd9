"""Command-line options shared by every launcher: each option also reads ``CELLBUS_*``."""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path
from typing import Any

from .errors import ConfigError


def env_name(flag: str, node: str = "") -> str:
    prefix = f"CELLBUS_{node.upper()}_" if node else "CELLBUS_"
    return prefix + flag.lstrip("-").replace("-", "_").upper()


def add_option(parser: argparse.ArgumentParser, flag: str, *, help: str, node: str = "",
               **kwargs: Any) -> None:
    """``parser.add_argument(flag, ...)`` whose default comes from ``CELLBUS_<FLAG>`` when set
    (``CELLBUS_<NODE>_<FLAG>`` with ``node``, for options such as endpoints that differ
    between the nodes of one machine). ``--help`` names the variable and the default.
    """
    env = env_name(flag, node)
    if env in os.environ:
        value: Any = os.environ[env]
        if kwargs.get("action") == "store_true":
            value = value.lower() in ("1", "true", "yes", "on")
        elif kwargs.get("action") == "append":  # several values, space-separated
            value = [kwargs["type"](v) for v in value.split()] if "type" in kwargs \
                else value.split()
        elif "type" in kwargs:
            value = kwargs["type"](value)
        kwargs["default"] = value
    default = kwargs.get("default")
    # argparse %-formats help: a default such as "50%" must reach it as "50%%"
    shown = f"; default {default}".replace("%", "%%") if default not in (None, False, "") else ""
    parser.add_argument(flag, help=f"{help} (env {env}{shown})", **kwargs)


def load_key(path: str | os.PathLike[str] | None) -> bytes:
    """The deployment key from ``path``; a node with no key refuses to start."""
    if not path:
        raise ConfigError("no --key-file given (or CELLBUS_KEY_FILE): cellbus never runs "
                          "unsigned; `bin/cellbus key PATH` generates one")
    p = Path(path)
    try:
        key = p.read_bytes().strip()
    except OSError as e:
        raise ConfigError(f"cannot read key file {p}: {e.strerror}") from None
    if not key:
        raise ConfigError(f"key file {p} is empty; `bin/cellbus key PATH` generates one")
    return key


def generate_key(path: str | os.PathLike[str]) -> bytes:
    """Write a fresh random key to ``path`` with mode 0600; refuse to overwrite one."""
    key = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key


def add_metrics_option(parser: argparse.ArgumentParser) -> None:
    """``--metrics-port``, for the nodes that serve metrics on a port of their own."""
    add_option(parser, "--metrics-port", type=int, default=0, metavar="PORT",
               help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics; 0: off")


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every node takes: the key file and the log level."""
    add_option(parser, "--key-file", metavar="PATH",
               help="file holding the deployment key that signs every bus message")
    add_option(parser, "--packer", default="msgpack", choices=["msgpack", "json"],
               help="bus encoding: msgpack between cellbus nodes, json to talk to Jupyter peers")
    add_option(parser, "--log-level", default="INFO",
               choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log verbosity")

"""Command-line options shared by every launcher, and where else their values come from.

Each option made with :func:`add_option` takes its value from, in this order: the flag; the
``CELLBUS_*`` variable named after it; the TOML file given with ``--config`` (its keys are
the long option names; a table named after a node, ``[gateway]`` say, holds that node's
options, so one file serves every node of a machine); the default. :func:`parse_args` puts
every value, from wherever it comes, through the flag's own conversion and choices, so a bad
variable or file entry is a one-line error naming it and exit status 2, as a bad flag is.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import secrets
import sys
import tomllib
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import ConfigError
from .version import VERSION

if TYPE_CHECKING:
    from .wire import Session

#: The nodes whose options may sit in a table of their own in a ``--config`` file.
NODES = ("broker", "device", "gateway")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class _Source:
    """Where else an option's value may come from than its flag."""
    key: str    # the long option name: the flag without "--", the key in a config file
    env: str    # its CELLBUS_* variable
    kind: str   # argparse's action: "store", "store_true" or "append"


#: Every option made by :func:`add_option` (parents share actions with their children).
_SOURCES: weakref.WeakKeyDictionary[argparse.Action, _Source] = weakref.WeakKeyDictionary()
_UNSET: Any = type("Unset", (), {"__repr__": lambda self: "<unset>"})()


def env_name(flag: str, node: str = "") -> str:
    prefix = f"CELLBUS_{node.upper()}_" if node else "CELLBUS_"
    return prefix + flag.lstrip("-").replace("-", "_").upper()


def plain(docstring: str) -> str:
    """A docstring's text for a terminal (``--help``): without its reST double backquotes."""
    return docstring.replace("``", "")


def add_option(parser: argparse.ArgumentParser, flag: str, *, help: str, node: str = "",
               **kwargs: Any) -> None:
    """``parser.add_argument(flag, ...)`` that :func:`parse_args` also fills from
    ``CELLBUS_<FLAG>`` (``CELLBUS_<NODE>_<FLAG>`` with ``node``, for options such as
    endpoints that differ between the nodes of one machine) and from a ``--config`` file.
    ``--help`` names the variable and the default.
    """
    env = env_name(flag, node)
    default = kwargs.get("default")
    # argparse %-formats help: a default such as "50%" must reach it as "50%%"
    shown = f"; default {default}".replace("%", "%%") if default not in (None, False, "") \
        else ""
    action = parser.add_argument(flag, help=f"{help} (env {env}{shown})", **kwargs)
    _SOURCES[action] = _Source(flag.lstrip("-"), env, kwargs.get("action", "store"))


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None, *,
               node: str = "") -> argparse.Namespace:
    """``parser.parse_args(argv)``, with each option made by :func:`add_option` and not given
    as a flag taken from its variable, else from the ``--config`` file (its top level and its
    ``[node]`` table), else its default. A bad value or file is a one-line error, exit 2."""
    options = {action: source for action in _actions(parser)
               if (source := _SOURCES.get(action)) is not None}
    saved = {action: action.default for action in options}
    for action, source in options.items():  # None: an append action appends to its default
        action.default = None if source.kind == "append" else _UNSET
    for each in _parsers(parser):
        each.error = functools.partial(_usage_error, each)  # type: ignore[method-assign]
    try:
        args = parser.parse_args(argv)
    finally:
        for action, default in saved.items():
            action.default = default
    try:
        path = getattr(args, "config", None)
        if path is _UNSET:
            path = os.environ.get("CELLBUS_CONFIG") or None
            args.config = path
        keys = {s.key for a, s in options.items() if hasattr(args, a.dest)}
        found = read_config(path, node, keys) if path else {}
        for action, source in options.items():
            if not hasattr(args, action.dest):
                continue  # an option of a subcommand that was not chosen
            value = getattr(args, action.dest)
            if value is not _UNSET and not (source.kind == "append" and value is None):
                continue  # given as a flag
            if source.env in os.environ:
                value = convert(action, source, os.environ[source.env], source.env)
            elif source.key in found:
                value = convert(action, source, found[source.key], f"{path}: {source.key}")
            else:
                value = saved[action]
                if isinstance(value, str) and action.type is not None:
                    value = convert(action, source, value, source.key)
            setattr(args, action.dest, value)
    except ConfigError as e:
        _fail(parser, str(e))
    return args


def read_config(path: str, node: str, keys: set[str]) -> dict[str, Any]:
    """The entries of TOML file ``path`` for ``node``: its top level, then its ``[node]``
    table (which wins). Tables of the other nodes are skipped; any other key that is not one
    of ``keys`` is a :class:`ConfigError`."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read --config {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--config {path} is not TOML: {e}") from None
    table = data.pop(node, {}) if node else {}
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {node} must be a table ([{node}]) of its options")
    found: dict[str, Any] = {}
    for where, entries in (("", data), (f"[{node}] ", table)):
        for key, value in entries.items():
            if key in NODES and isinstance(value, dict):
                continue
            if key not in keys or key == "config":
                what = f"cellbus {node}" if node else "this command"
                raise ConfigError(f"{path}: {where}unknown key {key!r}: {what} has no --{key}")
            found[key] = value
    return found


def convert(action: argparse.Action, source: _Source, value: Any, where: str) -> Any:
    """``value`` (a variable's text or a TOML value) checked and converted as the flag's
    would be; ``where`` names it in the :class:`ConfigError` that says what is wrong."""
    flag = f"--{source.key}"
    if source.kind == "store_true":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{where}: {value!r} is not a yes or no (1/true/yes/on or "
                          f"0/false/no/off, as for {flag})")
    if source.kind == "append":
        items = value.split() if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ConfigError(f"{where}: give a list of values for {flag}, not {value!r}")
        return [_one(action, flag, item, where) for item in items]
    return _one(action, flag, value, where)


def _one(action: argparse.Action, flag: str, value: Any, where: str) -> Any:
    if isinstance(value, (dict, list)):
        raise ConfigError(f"{where}: give one value for {flag}, not {value!r}")
    text = str(value).lower() if isinstance(value, bool) else str(value)
    make = action.type if callable(action.type) else str
    try:
        result = make(text)
    except argparse.ArgumentTypeError as e:
        raise ConfigError(f"{where}: {e} (as for {flag})") from None
    except (TypeError, ValueError):
        name = getattr(make, "__name__", "")
        if name in ("int", "float"):
            raise ConfigError(f"{where}: invalid {name} value: {text!r} (as for {flag})") from None
        raise ConfigError(f"{where}: invalid value {text!r} for {flag}: "
                          f"{sys.exc_info()[1]}") from None
    if action.choices is not None and result not in action.choices:
        choices = ", ".join(map(repr, action.choices))
        raise ConfigError(f"{where}: invalid choice {result!r} (as for {flag}, choose from "
                          f"{choices})")
    return result


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's actions and those of its subcommands' parsers."""
    found: list[argparse.Action] = []
    for action in parser._actions:
        found.append(action)
        if isinstance(action.choices, dict):  # subparsers: {name: parser}
            for sub in action.choices.values():
                if isinstance(sub, argparse.ArgumentParser):
                    found += _actions(sub)
    return found


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parser and its subcommands' parsers (``cellbus user add``...)."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action.choices, dict):
            found += [p for sub in action.choices.values()
                      if isinstance(sub, argparse.ArgumentParser) for p in _parsers(sub)]
    return found


def _fail(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.exit(2, f"{parser.prog}: error: {message}\n")


def _usage_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """argparse's own error (a flag it does not know, a value its type refuses), in one line
    as a bad variable's: argparse printed the whole usage first, 13 lines for ``up`` and 23
    for ``device`` above the one that says what is wrong. A flag it does not know, or one
    missing, points at ``--help``."""
    if message.startswith(("unrecognized arguments", "the following arguments are required")):
        message += f" (`{parser.prog} --help` lists its options)"
    _fail(parser, message)


#: A line of a key file that starts so holds a key accepted too, not signed with, while a
#: bus key is rotated (:mod:`protocol.rekey`).
ACCEPT = b"accept "


def load_key(path: str | os.PathLike[str] | None) -> bytes:
    """The deployment key from ``path``; a node with no key refuses to start."""
    return load_keys(path)[0]


def load_keys(path: str | os.PathLike[str] | None) -> tuple[bytes, tuple[bytes, ...]]:
    """The deployment key from ``path``, which signs, and the keys the file also accepts
    (its ``accept`` lines, during a rotation); a node with no key refuses to start. A key
    file of one key reads as before, whatever bytes it holds."""
    if not path:
        raise ConfigError("no --key-file given (or CELLBUS_KEY_FILE): cellbus never runs "
                          "unsigned; `bin/cellbus key PATH` generates one")
    p = Path(path)
    try:
        lines = p.read_bytes().split(b"\n")
    except OSError as e:
        raise ConfigError(f"cannot read the --key-file {p}: {e.strerror}; every node of a "
                          "deployment needs the same key: copy it here, or, for a new "
                          "deployment, `bin/cellbus key PATH` generates one") from None
    key = b"\n".join(line for line in lines if not line.startswith(ACCEPT)).strip()
    accept = (line[len(ACCEPT):].strip() for line in lines if line.startswith(ACCEPT))
    if not key:
        raise ConfigError(f"the --key-file {p} is empty; `bin/cellbus key PATH` generates one")
    return key, tuple(k for k in accept if k)


def bus_session(path: str | os.PathLike[str] | None, **options: Any) -> Session:
    """A node's :class:`~protocol.wire.Session` with the keys of its ``--key-file``."""
    from .wire import Session
    key, accept = load_keys(path)
    return Session(key, accept=accept, **options)


def generate_key(path: str | os.PathLike[str]) -> bytes:
    """Write a fresh random key to ``path`` with mode 0600; refuse to overwrite one. Its
    folder is made (mode 0700) if missing, as ``cert --dir`` makes its own."""
    key = secrets.token_hex(32).encode()
    Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key


def add_curve_options(parser: argparse.ArgumentParser, *, server: bool) -> None:
    """The CURVE keys of TCP links (protocol/curve.py): the broker's key folder, or a client
    node's own certificate and the broker's public one; and the way to go without."""
    if server:
        add_option(parser, "--curve-dir", metavar="DIR",
                   help="key folder (bin/cellbus cert): broker.key_secret, and the public keys "
                        "of the devices (devices/) and gateways (gateways/) it accepts")
    else:
        add_option(parser, "--curve-key", metavar="FILE",
                   help="this node's own certificate (NAME.key_secret, from bin/cellbus cert)")
        add_option(parser, "--broker-key", metavar="FILE",
                   help="the broker's public certificate (broker.key)")
    add_option(parser, "--insecure-bus", action="store_true",
               help="allow tcp:// endpoints without CURVE: code and output cross the network "
                    "in clear, open to anyone who reaches the ports; only on a trusted network")


def use_curve(node: Any, args: argparse.Namespace) -> None:
    """Give ``node`` the keys its options name (a ConfigError says what is wrong)."""
    from .curve import ClientKeys, ServerKeys
    from .rekey import KeyFiles
    node.key_files = KeyFiles(args.key_file, getattr(args, "curve_key", None),
                              getattr(args, "broker_key", None))
    node.insecure = bool(args.insecure_bus)
    if getattr(args, "curve_dir", None):
        node.keys = ServerKeys(node.ctx, args.curve_dir)
    elif getattr(args, "curve_key", None) or getattr(args, "broker_key", None):
        if not (args.curve_key and args.broker_key):
            raise ConfigError("give both --curve-key (this node's certificate) and "
                              "--broker-key (the broker's public certificate)")
        node.keys = ClientKeys(args.curve_key, args.broker_key)


def tcp_port(text: str) -> int:
    """argparse type of a TCP port: 0 to 65535 (0: a free one). ``int`` alone took
    ``--port 99999``, which the socket layer took as 34463 without a word."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a port is a number, not {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {port}")
    return port


#: What a bus endpoint looks like: tcp://HOST:PORT (PORT may be * when binding), ipc://PATH,
#: inproc://NAME.
_ENDPOINT = re.compile(r"(?:tcp://(?:\[[^\]]+\]|[^\s:/\[\]]+):(?:\d{1,5}|\*)"
                       r"|ipc://\S+|inproc://\S+)")


def endpoint(text: str) -> str:
    """argparse type of a bus endpoint. Before, any text was taken, and ``--broker bogus``
    was then called "a TCP endpoint" that needs CURVE keys, or a port left out failed later
    as ZeroMQ's "Invalid argument"."""
    value = text.strip()
    if not _ENDPOINT.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"an endpoint is tcp://HOST:PORT or ipc:///PATH, not {text!r}")
    return value


def add_metrics_option(parser: argparse.ArgumentParser) -> None:
    """``--metrics-port``, for the nodes that serve metrics on a port of their own."""
    add_option(parser, "--metrics-port", type=tcp_port, default=0, metavar="PORT",
               help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics; 0: off")


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every node takes: --version, the config file, the key file, the log level."""
    parser.add_argument("--version", action="version", version=f"cellbus {VERSION}")
    add_option(parser, "--config", metavar="FILE",
               help="TOML file of options: keys are the long option names, at the top level "
                    "or in a table named after the node ([broker], [device], [gateway]); "
                    "a flag or a CELLBUS_* variable wins over the file")
    add_option(parser, "--key-file", metavar="PATH",
               help="file holding the deployment key that signs every bus message")
    add_option(parser, "--packer", default="msgpack", choices=["msgpack", "json"],
               help="bus encoding: msgpack between cellbus nodes, json to talk to Jupyter peers")
    add_log_level_option(parser)
    add_option(parser, "--log-file", metavar="PATH",
               help="append log lines to PATH instead of stderr; reopened when moved away "
                    "(logrotate)")


#: The levels ``--log-level`` takes (in any case; WARN for WARNING, as logging spells it too).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def log_level(value: str) -> str:
    """A ``--log-level`` value as written (``debug``, ``Warn``...) in its canonical name."""
    upper = value.strip().upper()
    return "WARNING" if upper == "WARN" else upper


def add_log_level_option(parser: argparse.ArgumentParser) -> None:
    """``--log-level``, for every node and ``up``."""
    add_option(parser, "--log-level", default="INFO", type=log_level, choices=LOG_LEVELS,
               help="log verbosity (any case)")

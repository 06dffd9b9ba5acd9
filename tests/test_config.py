"""Where a node's options come from: flags, ``CELLBUS_*`` variables, a ``--config`` TOML file.

Exit statuses and messages are checked on real processes started with the ``cellbus``
launcher (tests/harness.py: ``CELLBUS``); the order of precedence on the real parsers, in
this process. Also: the version, said once in the package metadata, and ``pip install .``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from gateway import script
from harness import CELLBUS, ROOT, Chain, NodeProcess, free_port, node_env
from protocol.config import parse_args


def run(*argv: str, env: dict[str, str] | None = None,
        cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``cellbus ARGV`` to its end (a node that wrongly starts is killed at the timeout)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CELLBUS_")}
    return subprocess.run([*CELLBUS, *argv], env=node_env(env, base=clean), cwd=cwd,
                          capture_output=True, text=True, timeout=30)


def assert_one_line_error(out: subprocess.CompletedProcess[str], *names: str) -> None:
    """Exit status 2 and a single line on stderr that names each of ``names``."""
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for name in names:
        assert name in lines[0], lines[0]


# -- CELLBUS_* variables: the flag's own checks ---------------------------------------------

NODE_ARGV = {"gateway": [], "device": ["--connect", "tcp://127.0.0.1:9"],
             "broker": ["--store", "sqlite:///{tmp}/c.db"], "up": [], "status": []}


@pytest.mark.parametrize("command, variable, value", [
    ("gateway", "CELLBUS_GATEWAY_PORT", "abc"),
    ("gateway", "CELLBUS_GATEWAY_AUTH", "bogus"),
    ("gateway", "CELLBUS_GATEWAY_ALLOW_ANONYMOUS", "maybe"),
    ("gateway", "CELLBUS_PACKER", "xml"),
    ("broker", "CELLBUS_BROKER_RETENTION", "soon"),
    ("broker", "CELLBUS_LOG_LEVEL", "LOUD"),
    ("device", "CELLBUS_MAX_SESSIONS", "many"),
    ("up", "CELLBUS_DEVICES", "two"),
    ("status", "CELLBUS_PACKER", "xml"),
])
def test_a_bad_variable_is_a_one_line_error_with_status_2(tmp_path: Path, key_file: Path,
                                                          command: str, variable: str,
                                                          value: str) -> None:
    """Were it taken, each command would start (and run into the timeout) or fail later."""
    key = ["--key-file", str(key_file)] if command != "up" else []
    port = str(free_port())  # a flag would hide the variable: the gateway's port is one too
    argv = [arg.format(tmp=tmp_path) for arg in NODE_ARGV[command]]
    out = run(command, *argv, *key,
              env={"CELLBUS_GATEWAY_PORT": port, variable: value})
    assert_one_line_error(out, variable, repr(value))


def test_a_valid_variable_is_taken(key_file: Path) -> None:
    out = run("broker", "--key-file", str(key_file),
              env={"CELLBUS_STORE": "nosuch://x", "CELLBUS_BROKER_RETENTION": "1h"})
    assert out.returncode == 2 and "nosuch://x" in out.stderr, out.stderr


# -- --config FILE ----------------------------------------------------------------------------

def test_one_file_per_machine_configures_broker_device_and_gateway(
        tmp_path: Path, key_file: Path, nodes: list[NodeProcess]) -> None:
    """Each node started with nothing but ``--config`` finds its options in the file: common
    ones at the top level, its own in its table; the other nodes' tables are not its
    business. The chain then runs a cell."""
    chain = Chain(key_file, f"sqlite:///{tmp_path / 'c.db'}", nodes)
    device_key = chain.cert_options("from-file", "device")[1]
    gateway_key, broker_key = chain.cert_options("gateway", "gateway")[1::2]
    config = tmp_path / "cellbus.toml"
    config.write_text(f"""\
key-file = "{key_file}"
log-level = "INFO"

[broker]
store = "{chain.store}"
gateway-bind = "{chain.gateway_ep}"
device-bind = "{chain.device_ep}"
publish-bind = "{chain.publish_ep}"
retention = "1h"
curve-dir = "{chain.keys_dir}"

[device]
connect = "{chain.device_ep}"
curve-key = "{device_key}"
broker-key = "{broker_key}"
device-id = "from-file"
max-sessions = 3

[gateway]
curve-key = "{gateway_key}"
broker-key = "{broker_key}"
port = {chain.port}
broker = "{chain.gateway_ep}"
subscribe = "{chain.publish_ep}"
allow-origin = ["https://one.example", "https://two.example"]
""")
    chain.broker = NodeProcess("broker", "--config", str(config))
    nodes.append(chain.broker)
    chain.broker.wait_for_log(r"broker started")
    device = NodeProcess("device", "--config", str(config))
    nodes.append(device)
    chain.broker.wait_for_log(r"device from-file registered")
    chain.gateway = NodeProcess("gateway", "--config", str(config))
    nodes.append(chain.gateway)
    chain.gateway.wait_for_log(rf"gateway listening on .*{chain.port}")
    assert chain.evaluate("u/w/1", "print(6 * 7)")[0] == 202
    assert chain.wait_done("u/w/1")["output"]["stdout_0"]["content"] == "42\n"
    chain.broker.wait_for_log(r"device from-file registered \(capacity 3,")


@pytest.mark.parametrize("text, names", [
    ('prot = 8080\n', ["prot"]),
    ('[gateway]\nmax-input = "abc"\n', ["max-input", "'abc'"]),
    ('[gateway]\nauth = "bogus"\n', ["auth", "'bogus'"]),
    ('[gateway]\nallow-anonymous = "maybe"\n', ["allow-anonymous"]),
    ('[gateway]\nconnect = "tcp://127.0.0.1:9"\n', ["connect"]),  # a device's option
    ('gateway = 3\n', ["gateway"]),
    ('port = \n', ["not TOML"]),
    ('config = "other.toml"\n', ["config"]),
])
def test_a_bad_file_is_a_one_line_error_with_status_2(tmp_path: Path, key_file: Path,
                                                     text: str, names: list[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    out = run("gateway", "--key-file", str(key_file), "--config", str(config),
              env={"CELLBUS_GATEWAY_PORT": str(free_port())})
    assert_one_line_error(out, str(config), *names)


def test_a_missing_file_is_a_one_line_error(tmp_path: Path, key_file: Path) -> None:
    missing = tmp_path / "nope.toml"
    out = run("broker", "--key-file", str(key_file), env={"CELLBUS_CONFIG": str(missing)})
    assert_one_line_error(out, str(missing))


def gateway_args(monkeypatch: pytest.MonkeyPatch, config: Path, *argv: str,
                 **env: str) -> dict[str, object]:
    from gateway.__main__ import parser
    for name in [n for n in os.environ if n.startswith("CELLBUS_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = parse_args(parser(), ["--config", str(config), *argv], node="gateway")
    return {"port": args.port, "origins": args.allow_origin, "rate": args.rate,
            "anonymous": args.allow_anonymous, "max_input": args.max_input}


def test_flag_wins_over_variable_over_file_over_default(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('port = 1111\nallow-origin = ["https://file.example"]\n'
                      '[gateway]\nport = 2222\nallow-anonymous = true\nrate = "5/s"\n')
    got = gateway_args(monkeypatch, config)
    assert got == {"port": 2222, "origins": ["https://file.example"], "rate": "5/s",
                   "anonymous": True, "max_input": parser_default("--max-input")}
    got = gateway_args(monkeypatch, config, CELLBUS_GATEWAY_PORT="3333",
                       CELLBUS_GATEWAY_ALLOW_ORIGIN="https://a.example https://b.example",
                       CELLBUS_GATEWAY_ALLOW_ANONYMOUS="no")
    assert got["port"] == 3333 and got["anonymous"] is False
    assert got["origins"] == ["https://a.example", "https://b.example"]
    got = gateway_args(monkeypatch, config, "--port", "4444", "--allow-origin",
                       "https://flag.example", "--allow-anonymous",
                       CELLBUS_GATEWAY_PORT="3333", CELLBUS_GATEWAY_ALLOW_ORIGIN="https://a.b")
    assert got["port"] == 4444 and got["anonymous"] is True
    assert got["origins"] == ["https://flag.example"]  # the flag replaces, it does not add


def parser_default(flag: str) -> object:
    from gateway.__main__ import parser
    return next(a.default for a in parser()._actions if flag in a.option_strings)


# -- the version: once, in the package metadata ---------------------------------------------

def test_every_command_says_the_installed_version() -> None:
    version = metadata.version("cellbus")
    assert run("--version").stdout == f"cellbus {version}\n"
    for node in ("broker", "device", "gateway"):
        assert run(node, "--version").stdout == f"cellbus {version}\n"


def test_a_checkout_that_is_not_installed_reads_its_setup_cfg(tmp_path: Path) -> None:
    """``python -S`` in a copy of the checkout leaves every installed metadata out: the
    version comes from setup.cfg, and without one it says it does not know."""
    shutil.copytree(ROOT / "protocol", tmp_path / "protocol",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    script = ("import importlib.metadata as m, sys\n"
              "try:\n    m.version('cellbus'); sys.exit('installed')\n"
              "except m.PackageNotFoundError: pass\n"
              "from protocol.version import VERSION; print(VERSION)")

    def version() -> str:
        out = subprocess.run([sys.executable, "-S", "-c", script], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert version() == f"{metadata.version('cellbus')}\n"
    (tmp_path / "setup.cfg").unlink()
    assert version() == "0+unknown\n"


def test_the_browser_client_states_the_same_version() -> None:
    """cellbus.js states the version by hand (it is served as its files say), so it is checked."""
    js = script.source().decode()
    assert f'version: "{metadata.version("cellbus")}"' in js


# -- pip install . ----------------------------------------------------------------------------

def test_pip_install_gives_the_cellbus_command(tmp_path: Path) -> None:
    """A plain (not editable) install into a fresh environment has a ``cellbus`` console
    script on the same launcher, the version from its metadata, device/init.c, and the
    gateway's pages and static files (the browser client's parts among them)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.rst"):
        shutil.copy(ROOT / name, src / name)
    for package in ("protocol", "broker", "device", "session", "gateway", "cellbus"):
        shutil.copytree(ROOT / package, src / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True,
                   timeout=120)
    python = env_dir / "bin" / "python"
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                              "--no-deps", "--quiet", str(src)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    command = env_dir / "bin" / "cellbus"
    out = subprocess.run([str(command), "--version"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout == f"cellbus {metadata.version('cellbus')}\n", out.stderr
    key = subprocess.run([str(command), "key", str(tmp_path / "k")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert key.returncode == 0 and (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    where = subprocess.run([str(python), "-c", "import device, cellbus.init_program as i; "
                            "print(device.__file__, i.source().is_file())"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert where.stdout.startswith(str(env_dir)) and where.stdout.endswith(" True\n")
    # the pages and every file they load (the browser client's parts among them)
    installed = next(env_dir.glob("lib/python*/site-packages/gateway"))
    for folder in ("static", "templates"):
        shipped = {p.relative_to(ROOT / "gateway") for p in (ROOT / "gateway" / folder).rglob(
            "*") if p.is_file()}
        assert shipped and {p.relative_to(installed) for p in (installed / folder).rglob(
            "*") if p.is_file()} == shipped, folder
    assert {p.name for p in (installed / "static" / "cellbus").glob("*.js")} == {
        "head.js", *script.PARTS}

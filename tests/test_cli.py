"""``bin/cellbus`` as a first user meets it: help that writes no file, a busy port said in one
line with the option that moves it, and a second ``up`` that does not take the first's place."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import ROOT, NodeProcess, free_port


def cellbus(*argv: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    import os
    return subprocess.run([str(ROOT / "bin" / "cellbus"), *argv], cwd=cwd, text=True,
                          capture_output=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("command", ["key", "status", "user", "up", "broker", "device",
                                     "gateway", "cert", "help"])
def test_help_of_every_command_writes_no_file(tmp_path: Path, command: str, flag: str) -> None:
    """Tests that ``--help``/``-h`` after any command, also one that takes a path, prints
    help and leaves no file named like the flag (``key --help`` wrote a key to ``--help``),
    in plain text: no docstring markup (``cellbus help`` printed its double backquotes)."""
    done = cellbus(command, flag, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout.lower() or command == "help"
    assert "``" not in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_key_refuses_options_and_existing_files_in_one_line(tmp_path: Path) -> None:
    """Tests that ``key`` takes nothing that starts with ``-`` for a path, names the way to
    such a file, and never overwrites a key."""
    done = cellbus("key", "--force", cwd=tmp_path)
    assert done.returncode == 2 and list(tmp_path.iterdir()) == []
    assert done.stderr == "cellbus key: unknown option '--force' (for a file of that name: " \
                          "./--force)\n"
    assert cellbus("key", "bus.key", cwd=tmp_path).returncode == 0
    first = (tmp_path / "bus.key").read_bytes()
    done = cellbus("key", "bus.key", cwd=tmp_path)
    assert done.returncode == 1 and "never overwritten" in done.stderr
    assert done.stderr.count("\n") == 1 and (tmp_path / "bus.key").read_bytes() == first
    assert cellbus("key", "--", "-odd", cwd=tmp_path).returncode == 0
    assert (tmp_path / "-odd").stat().st_mode & 0o777 == 0o600


def test_key_makes_the_folder_it_goes_in(tmp_path: Path) -> None:
    """Tests that ``key`` into a folder that does not exist yet (README's first step on a
    fresh machine: /etc/cellbus/bus.key) makes the folder, mode 0700, as ``cert --dir``
    does; before, it stopped with "No such file or directory"."""
    where = tmp_path / "etc" / "cellbus"
    done = cellbus("key", str(where / "bus.key"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (where / "bus.key").stat().st_mode & 0o777 == 0o600
    assert where.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("store", ["foo", "sqlite:cellbus.db", "redis://db/0"])
def test_up_refuses_a_store_url_no_broker_takes_before_starting(tmp_path: Path,
                                                                store: str) -> None:
    """Tests that ``up --store`` with a URL the broker would refuse stops at once, status 2,
    in one line naming --store and the accepted forms; before, ``up`` started the broker,
    which logged the error, and then said only "broker exited with status 2"."""
    done = cellbus("up", "--port", "0", "--store", store, cwd=tmp_path,
                   env={"XDG_RUNTIME_DIR": str(tmp_path)})
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("cellbus up: --store: ") and "sqlite:///" in done.stderr
    assert done.stderr.count("\n") == 1 and "broker exited" not in done.stderr, done.stderr


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that a listening socket holds."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))
        s.listen()
        yield s.getsockname()[1]


def assert_one_line(done: subprocess.CompletedProcess[str], expected: str) -> None:
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "Traceback" not in out and "Exception ignored" not in out, out
    assert out.strip().splitlines()[-1].endswith(expected), out


def test_a_gateway_on_a_busy_port_says_so_in_one_line(tmp_path: Path, key_file: Path,
                                                      busy_port: int) -> None:
    done = cellbus("gateway", "--port", str(busy_port), "--key-file", str(key_file),
                   "--insecure-bus",  # the subject is the port, not the bus's keys
                   "--broker", f"tcp://127.0.0.1:{free_port()}",
                   "--subscribe", f"tcp://127.0.0.1:{free_port()}", cwd=tmp_path)
    assert_one_line(done, f"gateway: port {busy_port} on 127.0.0.1 is in use by another "
                          "program (another cellbus?); stop that one, or choose a free one "
                          "with --port")


@pytest.mark.parametrize("option", ["--gateway-bind", "--publish-bind", "--device-bind",
                                    "--metrics-port"])
def test_a_broker_on_a_busy_endpoint_names_its_option(tmp_path: Path, key_file: Path,
                                                      busy_port: int, option: str) -> None:
    argv = {o: f"tcp://127.0.0.1:{free_port()}" for o in
            ("--gateway-bind", "--publish-bind", "--device-bind")}
    argv[option] = str(busy_port) if option == "--metrics-port" else \
        f"tcp://127.0.0.1:{busy_port}"
    done = cellbus("broker", "--store", f"sqlite:///{tmp_path / 'c.db'}", "--key-file",
                   str(key_file), "--insecure-bus", *(x for kv in argv.items() for x in kv),
                   cwd=tmp_path)
    what = f"metrics port {busy_port}" if option == "--metrics-port" else argv[option]
    assert_one_line(done, f"broker: {what} is in use by another program (another cellbus?); "
                          f"stop that one, or choose a free one with {option}")


def test_a_device_on_a_busy_metrics_port_names_the_option(tmp_path: Path, key_file: Path,
                                                          busy_port: int) -> None:
    done = cellbus("device", "--connect", f"tcp://127.0.0.1:{free_port()}", "--key-file",
                   str(key_file), "--insecure-bus", "--metrics-port", str(busy_port),
                   cwd=tmp_path)
    assert_one_line(done, f"device: metrics port {busy_port} is in use by another program "
                          "(another cellbus?); stop that one, or choose a free one with "
                          "--metrics-port")


def test_up_on_a_busy_port_says_so_in_one_line_and_starts_nothing(tmp_path: Path,
                                                                   busy_port: int) -> None:
    done = cellbus("up", "--port", str(busy_port), "--store", f"sqlite:///{tmp_path / 'u.db'}",
                   cwd=tmp_path, env={"XDG_RUNTIME_DIR": str(tmp_path)})
    assert_one_line(done, f"cellbus up: port {busy_port} on 127.0.0.1 is in use by another "
                          "program (another cellbus?); stop that one, or choose a free one "
                          "with --port")
    assert (done.stdout + done.stderr).count("\n") == 1  # no node was started
    assert not (tmp_path / "u.db").exists()


def test_a_second_up_is_refused_and_the_first_keeps_its_state(
        tmp_path: Path, nodes: list[NodeProcess]) -> None:
    """Tests that a second ``up`` while the first runs stops at once with one line, and
    that ``status`` still finds the first afterwards (the second replaced its state file,
    then removed it on exit). The line names all a second one needs of its own: it named a
    state directory alone, and one who followed it was stopped by the port, then by the
    store the first broker holds."""
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    port = free_port()
    first = NodeProcess("up", "--port", str(port), "--store", f"sqlite:///{tmp_path / 'a.db'}",
                        env=env)
    nodes.append(first)
    first.wait_for_log(rf"cellbus is up: http://127.0.0.1:{port}/", timeout=60)
    done = cellbus("up", "--port", str(free_port()), "--store",
                   f"sqlite:///{tmp_path / 'b.db'}", cwd=tmp_path, env=env, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert out == (f"cellbus up: another `up` (pid {first.proc.pid}) runs, at "
                   f"http://127.0.0.1:{port}/; stop it first, or give this one a state "
                   "directory, a port and a store of its own (XDG_RUNTIME_DIR=DIR bin/cellbus "
                   "up --port 8889 --store sqlite:///DIR/cellbus.db; `bin/cellbus status "
                   "--state DIR/cellbus/up.json` then reads it)\n")
    status = cellbus("status", "--json", cwd=tmp_path, env=env)  # it reads the state file
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["ok"] is True


FAKE_PYTHON = r"""#!/bin/bash
# Stands in for python3 and the venv's python: pip is as noisy as the real one on a first run.
# A venv holding NO_PIP is one whose making was stopped before pip was in.
case "$1 $2" in
    "-m venv") mkdir -p "$3/bin" && cp "$0" "$3/bin/python" ;;
    "-c import pip") [ ! -f "$(dirname "$0")/../NO_PIP" ] || exit 1 ;;
    "-m pip")
        if [ -f "$(dirname "$0")/../NO_PIP" ]; then
            echo "$0: No module named pip" >&2; exit 1
        fi
        for i in $(seq 30); do echo "Collecting package$i"; done
        echo "WARNING: Location 'file:///somewhere/' is ignored" >&2
        if [ -n "${FAKE_PIP_FAILS:-}" ]; then
            echo "ERROR: No matching distribution" >&2; exit 1
        fi ;;
esac
exit 0
"""


def fake_checkout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A checkout with the real bin/_venv and a python that installs nothing, noisily."""
    import shutil
    root = tmp_path / "checkout"
    (root / "bin").mkdir(parents=True)
    (root / "device").mkdir()
    shutil.copy(ROOT / "bin" / "_venv", root / "bin" / "_venv")
    shutil.copy(ROOT / "device" / "init.c", root / "device" / "init.c")
    (root / "setup.cfg").write_text("[metadata]\nname = fake\n")
    python = tmp_path / "python3"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return root, {"CELLBUS_PYTHON": str(python), "TMPDIR": str(tmp_path)}


def test_the_first_install_says_one_line_and_a_failed_one_everything(tmp_path: Path) -> None:
    """Tests that a first run's installs print one progress line, not pip's output, and that
    a failing install prints all of pip's output and what failed."""
    import os
    root, env = fake_checkout(tmp_path)
    done = subprocess.run([str(root / "bin" / "_venv"), "plots"], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [f"cellbus: first run: installing into {root / '.venv'} "
                                        "(a minute or two; quiet unless it fails)"]
    (root / "setup.cfg").touch()  # newer than the stamps: install again, and fail
    os.utime(root / "setup.cfg", (time.time() + 5, time.time() + 5))
    done = subprocess.run([str(root / "bin" / "_venv"), "plots"], capture_output=True, text=True,
                          env={**os.environ, **env, "FAKE_PIP_FAILS": "1"}, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0] == f"cellbus: installing the project into {root / '.venv'} (extras: plots)"
    assert "Collecting package30" in lines and "ERROR: No matching distribution" in lines
    assert lines[-1].startswith("cellbus: this failed (its output is above, and in ")


def test_a_venv_whose_first_install_was_stopped_is_made_again(tmp_path: Path) -> None:
    """Tests that a venv left without pip (Ctrl-C while the first run made it) is made again
    in the next run, saying so: every later run failed with "No module named pip" and
    `bin/cellbus up` never started until one found and removed .venv."""
    import os
    import shutil
    root, env = fake_checkout(tmp_path)
    (root / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(env["CELLBUS_PYTHON"], root / ".venv" / "bin" / "python")
    (root / ".venv" / "NO_PIP").touch()
    done = subprocess.run([str(root / "bin" / "_venv"), "plots"], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)
    assert done.returncode == 0, done.stderr
    venv = root / ".venv"
    assert done.stderr.splitlines() == [
        f"cellbus: {venv} has no pip (a first install stopped half way?); making it again",
        f"cellbus: first run: installing into {venv} (a minute or two; quiet unless it fails)"]
    assert not (venv / "NO_PIP").exists() and (venv / ".cellbus-venv-ready").exists()


def test_up_prints_the_url_last_once_every_node_is_ready(tmp_path: Path,
                                                          nodes: list[NodeProcess]) -> None:
    """Tests that the URL comes after every node's start-up lines (the devices have
    registered), set apart by blank lines."""
    port = free_port()
    up = NodeProcess("up", "--port", str(port), "--devices", "2",
                     "--store", f"sqlite:///{tmp_path / 'a.db'}",
                     env={"XDG_RUNTIME_DIR": str(tmp_path)})
    nodes.append(up)
    up.wait_for_log(rf"cellbus is up: http://127.0.0.1:{port}/", timeout=60)
    lines = list(up.lines)
    at = next(i for i, line in enumerate(lines) if "cellbus is up" in line)
    assert lines[at] == f"    cellbus is up: http://127.0.0.1:{port}/  (Ctrl-C stops it)"
    assert lines[at - 1] == ""
    assert sum("broker: device" in line and "registered" in line for line in lines[:at]) == 2
    assert sum("template process" in line for line in lines[:at]) == 2, "\n".join(lines)


def test_a_gateway_on_port_0_listens_on_a_free_port_and_says_which(key_file: Path,
                                                                   nodes) -> None:
    """Tests that ``gateway --port 0`` logs the port it got (not 0) and answers there."""
    gateway = NodeProcess("gateway", "--port", "0", "--key-file", str(key_file),
                          "--insecure-bus", "--broker", f"tcp://127.0.0.1:{free_port()}",
                          "--subscribe", f"tcp://127.0.0.1:{free_port()}")
    nodes.append(gateway)
    port = int(gateway.wait_for_log(r"gateway listening on http://127\.0\.0\.1:(\d+)/").group(1))
    assert port > 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
        assert resp.status == 200


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_a_port_out_of_range_is_refused_before_anything_starts(tmp_path: Path, port: str
                                                                ) -> None:
    """``--port 99999`` was taken (the socket layer listened on 34463 while ``up`` printed
    :99999), ``--port -1`` started the broker and devices before the gateway failed."""
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    for command in ("up", "gateway"):
        done = cellbus(command, f"--port={port}", cwd=tmp_path, env=env)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.splitlines()[-1].startswith(
            f"cellbus {command}: error: argument --port: a port is "), done.stderr
    assert list(tmp_path.iterdir()) == []  # no state file, no store: nothing started


def test_up_on_an_address_not_of_this_machine_says_so_in_one_line(tmp_path: Path) -> None:
    """``up --port 0 --host 10.0.0.1`` ended in a traceback from picking the free port."""
    for port in ("0", str(free_port())):
        done = cellbus("up", "--host", "192.0.2.1", "--port", port, cwd=tmp_path,
                       env={"XDG_RUNTIME_DIR": str(tmp_path)})
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stdout + done.stderr == (
            f"cellbus up: the gateway cannot listen on 192.0.2.1 port {port}: Cannot assign "
            "requested address (--host names an address of this machine)\n")


def test_cert_list_says_when_the_folder_is_missing_or_accepts_no_key(tmp_path: Path) -> None:
    """Tests that ``cert --list`` of a folder that is not there (a typo in --dir, or run
    elsewhere than the default ``keys`` folder's parent) fails in one line naming it, and
    that a key folder accepting no device or gateway says so; before, both printed nothing
    and exited 0, as if the broker accepted no key."""
    done = cellbus("cert", "--list", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == "", done.stdout
    assert done.stderr == "cellbus cert: no key folder keys: give the broker's " \
                          "--curve-dir as --dir\n", done.stderr
    assert cellbus("cert", "broker", "--role", "broker", cwd=tmp_path).returncode == 0
    empty = cellbus("cert", "--list", cwd=tmp_path)
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout == "keys accepts no device or gateway key (make one with cellbus " \
                           "cert NAME --role device|gateway --dir keys)\n", empty.stdout


def test_up_help_says_how_to_give_its_nodes_other_options(tmp_path: Path) -> None:
    """Tests that ``up --help`` says that the nodes read CELLBUS_* variables, with the way
    to offer a kernel of one's own (before: it listed its flags, none of them --kernels, and
    a researcher with a backend found no way to run it under ``up`` short of the README's
    Options section)."""
    done = cellbus("up", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "CELLBUS_KERNELS=python,calc=mymodule:Calc PYTHONPATH=DIR bin/cellbus up" in text, \
        text

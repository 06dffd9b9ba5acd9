"""A device that cannot start says why in one line, status 2, with no traceback: a
``--backend`` it cannot load is named with the import's own reason before anything starts.
Before, the template process died with a traceback and the device followed with another
(``LaunchError: the template process ended before it was ready``), status 1."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness import CELLBUS, ROOT, node_env


def test_a_backend_the_device_cannot_load_is_one_line(key_file: Path) -> None:
    """Tests that --backend naming a module that is not there, and one naming a class the
    module lacks, stop the device with status 2 and a line naming the option and why."""
    for spec, why in (("nosuch:Thing", "No module named 'nosuch'"),
                      ("session.python:NoSuchClass", "NoSuchClass")):
        out = subprocess.run([*CELLBUS, "device", "--key-file", str(key_file), "--connect",
                              "ipc:///nowhere", "--backend", spec], env=node_env(),
                             cwd=ROOT, capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
        assert out.returncode == 2, (spec, out.stderr)
        assert "Traceback" not in out.stderr, out.stderr
        assert f"--backend {spec!r}" in out.stderr and why in out.stderr, out.stderr


def test_a_template_that_cannot_start_is_one_line(key_file: Path, tmp_path: Path) -> None:
    """Tests that a device whose template process ends before it is ready (here: a backend
    that imports in the device but not in the template) stops with status 2 and one line
    of its own after the template's, not a LaunchError traceback."""
    (tmp_path / "picky.py").write_text(
        "import sys\n"
        "if sys.argv[0].endswith('template.py'):  # the template process, not the device\n"
        "    raise ImportError('not in the template')\n"
        "from session.python import PythonBackend as Backend\n")
    out = subprocess.run([*CELLBUS, "device", "--key-file", str(key_file), "--connect",
                          "ipc:///nowhere", "--backend", "picky:Backend"],
                         env=node_env({"PYTHONPATH": str(tmp_path)}), cwd=ROOT,
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2, out.stderr
    assert "cannot start its sessions' template process" in out.stderr, out.stderr
    assert "LaunchError" not in out.stderr, out.stderr


def test_the_start_line_says_the_limits_in_words(key_file: Path, nodes) -> None:
    """Tests that the device's start line gives its limits in words and units (it printed
    the dataclass: Limits(cpu_seconds=3600, memory_bytes=4294967296, ...))."""
    from harness import NodeProcess, ipc_endpoint
    device = NodeProcess("device", "--connect", ipc_endpoint("broker"), "--prefork", "0",
                         "--key-file", str(key_file), "--max-memory", str(2 * 2**30))
    nodes.append(device)
    line = device.wait_for_log(r"limits .*, workers under").group(0)
    assert "Limits(" not in line, line
    assert "CPU 3600 s, memory 2 GiB, 256 processes, files up to 1 GiB" in line, line

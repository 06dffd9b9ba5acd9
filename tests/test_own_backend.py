"""A researcher's own backend (tests/calc_backend.py, written from the README) offered by a
device next to Python, and what a backend's odd output does to its worker: nothing it
sends is lost without the user being told."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from harness import CELLBUS, ROOT, Chain, node_env
from device.workerstops import UNBEGUN_STOP
from test_chain_kernels import errors, evaluate, run
from test_kernel_start import execute
from test_session_worker import Worker, reply, stream_text

TESTS = Path(__file__).resolve().parent


def test_a_backend_module_is_offered_under_the_name_given_it(
        chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that --kernels NAME=module:Class offers the kernel NAME, which runs cells, and
    that a bare module:Class (no name a worksheet could ask for) is refused in the device's
    log saying how to name it (before: calc=... was read as a module 'calc=calc_backend'
    and not offered; a bare module:Class was announced as offered, then dropped by the
    broker without a word, so every evaluate naming it was a 400)."""
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    chain.start_broker()
    device = chain.start_device("--kernels", "python,calc=calc_backend:Calc,calc_backend:Calc")
    chain.start_gateway()
    device.wait_for_log(r"cannot offer the kernel 'calc_backend:Calc': 'calc_backend:Calc' is "
                        r"not a kernel name .*--kernels NAME=calc_backend:Calc")
    device.wait_for_log(r"offers the kernels python, calc \(")
    status, body = chain.http("GET", "/kernels")
    assert status == 200
    assert {"name": "calc", "display_name": "Calculator", "language": "calc"} in body["kernels"]
    doc = run(chain, "u/calc/1", "6 * (3 + 4)", kernel="calc")
    assert doc["status"] == "done", doc
    assert [b["content"] for b in doc["output"].values()] == ["42"]
    doc = run(chain, "u/calc/2", "6 /")
    assert [e["ename"] for e in errors(doc)] == ["SyntaxError"]


def test_text_with_lone_surrogates_is_shown_not_dropped(tmp_path: Path) -> None:
    """Tests that a print of a string holding surrogates (what os.fsdecode makes of bytes
    that are not UTF-8) shows, each replaced by U+FFFD (before: msgpack refused the whole
    stream record and the line was lost, said only in the device's log)."""
    worker = Worker(tmp_path)
    try:
        records = execute(worker, "print('caf\\udce9 ok'); print('\\ud800', 'end')")
        assert stream_text(records) == "caf\ufffd ok\n\ufffd end\n"
    finally:
        worker.close()


def test_a_display_that_cannot_be_sent_is_told_to_the_user(tmp_path: Path) -> None:
    """Tests that a backend's display of a value msgpack cannot send becomes a note on the
    run's stderr, and the run and the session go on (before: dropped, said only in the
    device's log)."""
    worker = Worker(tmp_path, "--backend", "calc_backend:Calc",
                    env={**os.environ, "PYTHONPATH": str(TESTS)})
    try:
        records = execute(worker, "show an object")
        assert reply(records)["status"] == "ok"
        note = stream_text(records, "stderr")
        assert note.startswith("[cellbus: a display_data was dropped: it cannot be sent "
                               "(TypeError: "), note
        assert [r["content"]["data"] for r in execute(worker, "2 ** 10")
                if r["msg_type"] == "execute_result"] == [{"text/plain": "1024"}]
    finally:
        worker.close()


def test_a_backend_that_fails_to_import_or_is_abstract_is_not_offered(
        chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that a --kernels backend whose module raises on import (not ImportError: any
    error of its own code) and one whose class lacks a method the interface requires are
    each refused in the device's log with why, and the device offers the rest (before: the
    first killed the template, and so the device, with a traceback, status 2; the second
    was offered, and every run of it failed with BackendStartError)."""
    (tmp_path / "boom.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "half.py").write_text(
        "from session.backend import ExecuteOutcome, SessionBackend\n"
        "class Half(SessionBackend):\n"
        "    def execute(self, code, *, silent=False, store_history=True):\n"
        "        return ExecuteOutcome()\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join((str(TESTS), str(tmp_path))))
    chain.start_broker()
    device = chain.start_device(
        "--kernels", "python,calc=calc_backend:Calc,boom=boom:X,half=half:Half")
    device.wait_for_log(r"cannot offer the kernel 'boom': backend 'boom:X': importing boom "
                        r"raised RuntimeError: boom at import")
    device.wait_for_log(r"cannot offer the kernel 'half': backend 'half:Half' lacks "
                        r"kernel_info")
    device.wait_for_log(r"offers the kernels python, calc \(")


def test_a_backend_option_whose_module_raises_is_one_line(key_file: Path,
                                                          tmp_path: Path) -> None:
    """Tests that --backend naming a module that raises on import stops the device with
    status 2 and one line naming the option and the error (before: a traceback)."""
    (tmp_path / "boom.py").write_text("raise RuntimeError('boom at import')\n")
    out = subprocess.run([*CELLBUS, "device", "--key-file", str(key_file), "--connect",
                          "ipc:///nowhere", "--backend", "boom:X"],
                         env=node_env({"PYTHONPATH": str(tmp_path)}), cwd=ROOT,
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    assert "--backend 'boom:X': importing boom raised RuntimeError: boom at import" \
        in out.stderr, out.stderr


def test_a_backend_in_the_current_directory_is_pointed_to_pythonpath(key_file: Path,
                                                                     tmp_path: Path) -> None:
    """Tests that a device started in the folder of a backend module, without PYTHONPATH
    (a researcher trying theirs), is told that the folder must be on PYTHONPATH (before:
    only "No module named 'mycalc'", about a file right there)."""
    (tmp_path / "mycalc.py").write_text((TESTS / "calc_backend.py").read_text())
    out = subprocess.run([*CELLBUS, "device", "--key-file", str(key_file), "--connect",
                          "ipc:///nowhere", "--kernels", "calc=mycalc:Calc"],
                         env=node_env(), cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2, out.stderr
    assert ("cannot offer the kernel 'calc': backend 'mycalc:Calc': No module named 'mycalc' "
            "(mycalc.py is in the current directory, which the device does not import "
            "backends from: give its folder as PYTHONPATH)") in out.stderr, out.stderr


def test_a_backend_that_hangs_at_import_is_named_while_the_device_waits(
        key_file: Path, tmp_path: Path, nodes: list) -> None:
    """Tests that a device whose --kernels backend never finishes importing says, after
    10 s, which backend of which kernel its template is importing (before: nothing for
    60 s, then "the template process did not report ready within 60 s")."""
    from harness import NodeProcess, ipc_endpoint
    (tmp_path / "stuck.py").write_text("import time\ntime.sleep(3600)\n")
    device = NodeProcess("device", "--connect", ipc_endpoint("broker"), "--key-file",
                         str(key_file), "--kernels", "python,stuck=stuck:Stuck",
                         env={"PYTHONPATH": str(tmp_path)})
    nodes.append(device)
    device.wait_for_log(r"its template process is not ready after 10 s: it is importing "
                        r"the backend 'stuck:Stuck' of the kernel 'stuck'", timeout=30)
    device.proc.kill()  # its template dies with it (PR_SET_PDEATHSIG)
    device.proc.wait(10)


def test_stop_ends_a_cell_whose_backend_never_finishes_starting(
        chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that Stop ends, within UNBEGUN_STOP and a margin, a cell whose worker never
    began it because its backend's ``__init__`` never returns: the cell fails saying so, and
    the session restarts. Before, the device held the interrupt until the worker said busy,
    which it never did: Stop answered 202 and the cell stayed needs_work for good (without
    --exec-timeout, which a loopback ``up`` does not set)."""
    (tmp_path / "hang.py").write_text(
        "import time\n"
        "from session.backend import ExecuteOutcome, SessionBackend\n"
        "class Hang(SessionBackend):\n"
        "    def __init__(self, out, config):\n"
        "        super().__init__(out, config)\n"
        "        time.sleep(3600)\n"
        "    def execute(self, code, *, silent=False, store_history=True):\n"
        "        return ExecuteOutcome()\n"
        "    def kernel_info(self):\n"
        "        return {'language_info': {'name': 'hang'}}\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    chain.start_broker()
    device = chain.start_device("--kernels", "python,hang=hang:Hang")
    chain.start_gateway()
    device.wait_for_log(r"offers the kernels python, hang \(")
    status, body = evaluate(chain, "u/hang/1", "1", "hang")
    assert status == 202, body
    deadline = time.monotonic() + UNBEGUN_STOP + 20
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline and doc.get("status") not in ("done", "error"):
        # Stop again each second: the first may reach the device before the cell does.
        status, body = chain.http("POST", "/home/u/hang/1/interrupt")
        assert status == 202, body
        doc = chain.update("u/hang/1", wait=1)[1]
    assert doc["status"] == "error", doc
    [error] = errors(doc)
    assert error["ename"] == "KeyboardInterrupt" and "had not begun the cell" in \
        error["evalue"], error

"""Kernels and backends that do not start, and kernelspecs a researcher installs for their
own user: each is told to the user in the cell, with why, and nothing is left running.

Kernelspecs here are real ones, written into a folder the device finds through
``JUPYTER_PATH`` (as ``jupyter kernelspec install --user`` puts one where only the device's
own account looks): a real ipykernel started by the venv's Python, a program that prints a
line and exits, one that leaves a child behind and exits, one with no ``argv``, one whose
program does not exist, one that is not JSON, one whose program is outside the sandbox.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness import Chain, until
from kernels import require_kernel
from test_backend_contract import _alive, _descendants
from test_chain_kernels import errors, run, text
from test_session_worker import Worker, of_type, reply, stream_text

DIES = "import sys; print('no licence for this kernel', file=sys.stderr); sys.exit(3)"
ORPHANS = ("import subprocess, sys; subprocess.Popen(['sleep', '1000']); "
           "print('left a child', file=sys.stderr); sys.exit(4)")


def kernelspecs(root: Path) -> Path:
    """A JUPYTER_PATH folder with the test's kernelspecs; returns it."""
    def write(name: str, spec: dict[str, Any] | str) -> None:
        folder = root / "kernels" / name
        folder.mkdir(parents=True)
        (folder / "kernel.json").write_text(spec if isinstance(spec, str) else json.dumps(
            {"display_name": f"Test {name}", "language": "python", **spec}))

    write("mine", {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f",
                            "{connection_file}"], "display_name": "My Python"})
    write("dies", {"argv": [sys.executable, "-c", DIES]})
    write("orphans", {"argv": [sys.executable, "-c", ORPHANS]})
    write("noargv", {})
    write("nowhere", {"argv": ["/nonexistent/bin/kernel", "-f", "{connection_file}"]})
    write("notjson", '{"argv": [')
    # A kernel in a venv of the researcher's own, outside what the sandbox shows.
    (root / "venv" / "bin").mkdir(parents=True)
    (root / "venv" / "bin" / "python").symlink_to(sys.executable)
    write("elsewhere", {"argv": [str(root / "venv" / "bin" / "python"), "-m",
                                 "ipykernel_launcher", "-f", "{connection_file}"]})
    return root


def execute(worker: Worker, code: str) -> list[dict[str, Any]]:
    """The records of one run, without the worker's diagnostics for the device's log (a
    failed start's ``worker_log``)."""
    msg_id = worker.submit(code)
    records = [r for r in worker.collect() if r["msg_type"] != "worker_log"]
    assert all(r["parent"] == msg_id for r in records)
    return records


def start_error(records: list[dict[str, Any]]) -> dict[str, Any]:
    (error,) = of_type(records, "error")
    assert reply(records)["status"] == "error"
    assert error["content"]["ename"] == "BackendStartError", records
    return error["content"]


@pytest.mark.timeout(120)
def test_a_kernel_that_dies_on_start_says_why_in_each_cell(tmp_path: Path) -> None:
    """Tests that a worker whose kernel exits at once answers each cell with the reason and
    what the kernel wrote, trying the start again each time (before: the worker exited with
    status 1 and the cell said only "WorkerDied"), and leaves no process of it behind."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "JUPYTER_PATH": str(kernelspecs(tmp_path))}
    for name, wrote in (("dies", "no licence for this kernel"), ("orphans", "left a child")):
        (tmp_path / name).mkdir()
        worker = Worker(tmp_path / name, "--backend", name, env=env)
        worker.sock.settimeout(60)
        try:
            for _ in range(2):
                error = start_error(execute(worker, "print(1)"))
                assert error["evalue"].startswith(f"the kernel {name!r} did not start")
                assert wrote in "\n".join(error["traceback"])
            # The kernel and whatever it started are gone (killed with its process group).
            deadline = time.monotonic() + 10
            while [p for p in _descendants(worker.proc.pid) if _alive(p)] and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
            assert not [p for p in _descendants(worker.proc.pid) if _alive(p)]
            assert worker.proc.poll() is None, worker.stderr()
        finally:
            worker.close()


def test_a_researchers_backend_that_raises_on_start_is_tried_again(tmp_path: Path) -> None:
    """Tests that a backend (module:Class) whose __init__ raises makes each run end in
    BackendStartError naming it and the exception, and that the run after the cause went
    runs in it (before: the worker exited, "WorkerDied")."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "refuse-to-start").write_text("licence server unreachable")
    worker = Worker(tmp_path, "--backend", "flaky_backend:FlakyBackend",
                    env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})
    try:
        error = start_error(execute(worker, "1 + 1"))
        assert error["evalue"] == ("the backend flaky_backend:FlakyBackend did not start: "
                                   "ConnectionError: licence server unreachable")
        worker.send("kernel_info_request", {})
        info = worker.collect()[1]  # (between busy and idle, as a query's reply)
        assert info["msg_type"] == "kernel_info_reply", info
        assert "did not start" in info["content"]["banner"]
        (worker.workdir / "refuse-to-start").unlink()
        records = execute(worker, "1 + 1")
        assert reply(records)["status"] == "ok", records
        assert stream_text(records) == "flaky: 1 + 1\n"
    finally:
        worker.close()


def test_a_start_that_failed_slowly_is_not_waited_for_twice(tmp_path: Path) -> None:
    """Tests that a run that waited through a slow failed start (a kernel that never
    answers fails after 60 s) is told at once instead of waiting as long again, and that a
    later run tries again (before this rule, a cell of a kernel that never answered took two
    minutes to fail)."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "refuse-to-start").write_text("slow licence server")
    worker = Worker(tmp_path, "--backend", "flaky_backend:FlakyBackend",
                    env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})
    try:
        msg_id = worker.submit("1")  # waits for the first start, which fails after SLOW
        records = worker.collect()
        tries = [r for r in records if r["msg_type"] == "worker_log"]
        assert len(tries) == 1, records  # the pool's start only: not tried again at once
        start_error([r for r in records if r["parent"] == msg_id])
        (tmp_path / "work" / "refuse-to-start").unlink()
        until(lambda: reply(execute(worker, "2"))["status"] == "ok",
              "a later run starts the backend", timeout=10)
    finally:
        worker.close()


@pytest.mark.timeout(240)
def test_kernelspecs_of_the_devices_own_user_run_in_the_sandbox(
        chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests, through the whole chain and its sandbox, that a kernelspec found only through
    the device's JUPYTER_PATH runs (before: the worker, whose environment is the session's,
    did not find it: WorkerDied), that one that cannot be launched is not offered and the
    device's log says why (also one whose program the sandbox does not show: every session
    of it failed), and that one that dies on start fails its cell saying why."""
    require_kernel("python3")  # ipykernel, which the kernelspec "mine" runs
    monkeypatch.setenv("JUPYTER_PATH", str(kernelspecs(tmp_path / "user-kernels")))
    chain.start_broker()
    device = chain.start_device("--kernels",
                                "python,mine,dies,noargv,nowhere,notjson,elsewhere")
    chain.start_gateway()
    status, body = chain.http("GET", "/kernels")
    assert status == 200
    assert sorted(k["name"] for k in body["kernels"]) == ["dies", "mine", "python"]
    assert "My Python" in [k["display_name"] for k in body["kernels"]]
    for name, why in (("noargv", "has no argv"),
                      ("nowhere", "'/nonexistent/bin/kernel', which is not an executable"),
                      ("notjson", "cannot be read: Expecting value"),
                      ("elsewhere", "venv/bin/python, which sandboxed sessions do not see")):
        device.wait_for_log(rf"cannot offer the kernel '{name}': .*{why}")

    doc = run(chain, "u/mine/1", "import os; print(6 * 7, os.getuid() != 0)", kernel="mine",
              timeout=90)
    assert (doc["status"], text(doc)) == ("done", "42 True\n"), (doc, device.log)

    doc = run(chain, "u/dies/1", "print(1)", kernel="dies", timeout=90)
    assert doc["status"] == "error"
    (error,) = errors(doc)
    assert error["ename"] == "BackendStartError", doc
    assert "no licence for this kernel" in "\n".join(error["traceback"])

    # Through Jupyter's API the kernel is "dead", with why, as jupyter_server lists one whose
    # start failed (it was "idle": JupyterLab offered it as usable, and each cell failed).
    status, created = chain.http("POST", "/api/kernels", json.dumps({"name": "dies"}).encode())
    assert status == 201, created
    path = f"/api/kernels/{created['id']}"
    dead = until(lambda: (got := chain.http("GET", path)[1])["execution_state"] == "dead" and got,
                 "the kernel whose start failed is dead", timeout=30)
    assert dead["reason"].startswith("the kernel 'dies' did not start: "), dead
    assert dead in chain.http("GET", "/api/kernels")[1]


def test_a_kernel_too_big_for_the_memory_limit_says_so(chain: Chain) -> None:
    """Tests that a kernel that cannot start within --max-memory (the address space of
    each session process: ipykernel's threads reserve more than 300 MiB) fails its cell
    naming that limit and its amount; it said only "did not start: can't start new
    thread", and an operator who had set --max-memory 600 MiB could not tell why no
    ipykernel session ever started."""
    require_kernel("python3")
    chain.start_broker()
    chain.start_device("--kernels", "python3", "--kernel-prefork", "0",
                       "--max-memory", str(300 * 2**20))
    chain.start_gateway()
    doc = run(chain, "u/big/1", "print(1)", kernel="python3")
    (error,) = errors(doc)
    assert error["ename"] == "BackendStartError", error
    assert error["evalue"].endswith("(each session process may use 300 MiB of address space "
                                    "(--max-memory), which may be too little for this kernel "
                                    "to start)"), error

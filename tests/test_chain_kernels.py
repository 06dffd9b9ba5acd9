"""Jupyter kernels as sessions through the real chain: gateway, broker on SQLite, devices
offering several kernels (real ipykernel, bash_kernel and IRkernel in sandboxed workers)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness import until
from kernels import require_kernel
from module_chain import module_chain
from test_chain_input import answer, wait_prompt

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def evaluate(chain: Any, cell: str, code: str, kernel: str | None = None) -> tuple[int, Any]:
    body: dict[str, Any] = {"input": code}
    if kernel is not None:
        body["kernel"] = kernel
    return chain.http("POST", f"/home/{cell}/evaluate", json.dumps(body).encode())


def run(chain: Any, cell: str, code: str, kernel: str | None = None,
        timeout: float = 60) -> dict[str, Any]:
    status, body = evaluate(chain, cell, code, kernel)
    assert status == 202, body
    return chain.wait_done(cell, timeout=timeout)


def text(doc: dict[str, Any]) -> str:
    return "".join(b["content"] for b in doc["output"].values() if b["type"] == "text")


def errors(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in doc["output"].values() if b["type"] == "error"]


@pytest.fixture(scope="module")
def kernel_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One chain for the module's tests that leave it as they found it, each on worksheets
    of its own (tests/module_chain.py)."""
    for name in ("python3", "bash"):
        require_kernel(name)
    yield from module_chain(tmp_path_factory, "kernels",
                            device=("--kernels", "python,python3,bash"))


def test_get_kernels_lists_what_devices_offer(kernel_chain) -> None:
    status, body = kernel_chain.http("GET", "/kernels")
    assert status == 200
    listed = {k["name"]: k for k in body["kernels"]}
    assert sorted(listed) == ["bash", "python", "python3"]
    assert listed["python"] == {"name": "python", "display_name": "Python 3 (cellbus)",
                                "language": "python"}
    assert listed["python3"]["language"] == "python"
    assert listed["python3"]["display_name"] != listed["python"]["display_name"]
    assert listed["bash"]["language"] == "bash"


def test_kernel_is_chosen_per_worksheet_by_its_first_evaluate(kernel_chain) -> None:
    chain = kernel_chain
    doc = run(chain, "u/shell/1", 'echo "bash $((6*7))"', kernel="bash")
    assert (doc["status"], text(doc)) == ("done", "bash 42\n"), (doc, chain.devices[0].log)
    doc = run(chain, "u/plain/1", "print('python', 6*7)")  # no kernel: the built-in one
    assert (doc["status"], text(doc)) == ("done", "python 42\n")
    # Later evaluates of the worksheet keep its kernel, unnamed or named the same.
    doc = run(chain, "u/shell/2", 'echo "still $((1+1))"')
    assert (doc["status"], text(doc)) == ("done", "still 2\n")
    doc = run(chain, "u/shell/3", 'echo "same"', kernel="bash")
    assert (doc["status"], text(doc)) == ("done", "same\n")
    # Another kernel named while the session runs is a 409 that says how to change it (it
    # ran in the session's kernel before, not saying so); after a restart it is chosen.
    status, body = evaluate(chain, "u/shell/4", "print('py')", kernel="python3")
    assert status == 409, body
    for word in ("'bash'", "'python3'", "Restart the session"):
        assert word in body["error"], body
    status, body = chain.http("POST", "/home/u/shell/4/restart", b"")
    assert status in (200, 202), body
    doc = run(chain, "u/shell/4", "import ipykernel; print('py', 6 * 7)", kernel="python3")
    assert (doc["status"], text(doc)) == ("done", "py 42\n"), doc


def test_unknown_kernel_is_a_400_that_lists_the_kernels(kernel_chain) -> None:
    status, body = evaluate(kernel_chain, "u/w/1", "x", kernel="cobol")
    assert status == 400
    assert "cobol" in body["error"]
    for name in ("bash", "python", "python3"):
        assert name in body["error"]
    status, body = kernel_chain.http("POST", "/home/u/w2/1/evaluate", b"input=1&kernel=nope",
                                     content_type="application/x-www-form-urlencoded")
    assert status == 400 and "nope" in body["error"]


def test_ipykernel_print_error_interrupt_and_restart(kernel_chain) -> None:
    chain = kernel_chain
    doc = run(chain, "u/ipy/1", "x = 6\nprint(x * 7)", kernel="python3")
    assert (doc["status"], text(doc)) == ("done", "42\n")
    doc = run(chain, "u/ipy/2", "1/0")
    assert doc["status"] == "error"
    assert [e["ename"] for e in errors(doc)] == ["ZeroDivisionError"]
    # Interrupt a long loop: the cell ends with KeyboardInterrupt, the kernel lives on.
    status, _ = evaluate(chain, "u/ipy/3", "import time\nprint('go', flush=True)\n"
                                           "while True: time.sleep(0.01)")
    assert status == 202
    deadline = time.monotonic() + 30
    while "go" not in text(chain.update("u/ipy/3", wait=2)[1]):
        assert time.monotonic() < deadline, "the loop never started"
    assert chain.http("POST", "/home/u/ipy/3/interrupt", b"{}")[0] == 202
    doc = chain.wait_done("u/ipy/3")
    assert doc["status"] == "error"
    assert [e["ename"] for e in errors(doc)] == ["KeyboardInterrupt"]
    assert text(run(chain, "u/ipy/4", "print(x)")) == "6\n"
    # Restart: a fresh kernel of the same kind, without the old variables.
    assert chain.http("POST", "/home/u/ipy/5/restart", b"{}")[0] == 202
    doc = run(chain, "u/ipy/5", "import sys\nprint('ipykernel' in sys.modules)\nprint(x)")
    assert text(doc) == "True\n"
    assert [e["ename"] for e in errors(doc)] == ["NameError"]


def test_an_interrupted_bash_cell_ends_with_keyboardinterrupt(kernel_chain) -> None:
    """bash_kernel answers an interrupt of a running command with status "abort" and no
    ename: the cell showed "Error: " (empty), where every other kernel says
    KeyboardInterrupt."""
    chain = kernel_chain
    status, _ = evaluate(chain, "u/bint/1", "echo go\nwhile true; do :; done", kernel="bash")
    assert status == 202
    deadline = time.monotonic() + 30
    while "go" not in text(chain.update("u/bint/1", wait=2)[1]):
        assert time.monotonic() < deadline, "the loop never started"
    assert chain.http("POST", "/home/u/bint/1/interrupt", b"{}")[0] == 202
    doc = chain.wait_done("u/bint/1")
    assert doc["status"] == "error"
    assert [(e["ename"], e["traceback"]) for e in errors(doc)] == [
        ("KeyboardInterrupt", ["KeyboardInterrupt"])], doc
    assert text(run(chain, "u/bint/2", "echo next")) == "next\n"


def test_a_kernel_that_ignores_interrupts_ends_its_cell_within_the_bound(kernel_chain) -> None:
    """Tests that a kernel that does not stop when interrupted (here its code ignores
    SIGINT) is restarted and its cell ends within INTERRUPT_GRACE (5 s) and a little of the
    Stop: it ended 11.5-14.2 s after, a 10 s grace and then the wait for the new kernel's
    start, which the cell need not wait for. The next cell runs in the fresh kernel."""
    from session.jupyter import INTERRUPT_GRACE
    chain = kernel_chain
    code = ("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "print('go', flush=True)\nwhile True: time.sleep(0.01)")
    assert evaluate(chain, "u/kign/1", "x = 1", kernel="python3")[0] == 202
    assert evaluate(chain, "u/kign/2", code)[0] == 202
    deadline = time.monotonic() + 30
    while "go" not in text(chain.update("u/kign/2", wait=2)[1]):
        assert time.monotonic() < deadline, "the loop never started"
    asked = time.monotonic()
    assert chain.http("POST", "/home/u/kign/2/interrupt", b"{}")[0] == 202
    doc = chain.wait_done("u/kign/2")
    took = time.monotonic() - asked
    assert INTERRUPT_GRACE <= 5.0 and took < INTERRUPT_GRACE + 1.5, took
    (error,) = errors(doc)
    assert error["ename"] == "KeyboardInterrupt", error
    assert "did not stop when interrupted" in error["evalue"], error
    doc = run(chain, "u/kign/3", "print('x' in globals())")
    assert (doc["status"], text(doc)) == ("done", "False\n"), doc


def test_a_kernel_that_ends_mid_cell_says_how_it_ended(kernel_chain) -> None:
    """KernelDied said only that the kernel ended: not whether it exited (and with what) or
    was killed (a memory limit's SIGKILL), so a researcher could not tell why."""
    chain = kernel_chain
    # (ipykernel's own iopub thread may not have sent a line printed just before os._exit:
    # krn saw 295-499 of 500 such lines reach a client of the kernel alone; the pause lets it)
    doc = run(chain, "u/kdie/1", "print('a', flush=True)\nimport os, time\ntime.sleep(0.5)\n"
              "os._exit(3)", kernel="python3")
    assert text(doc) == "a\n"
    (error,) = errors(doc)
    assert error["ename"] == "KernelDied"
    assert "(it exited with code 3)" in error["evalue"], error
    doc = run(chain, "u/kdie/2", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    (error,) = errors(doc)
    assert "(it was killed by signal 9 (SIGKILL))" in error["evalue"], error
    assert text(run(chain, "u/kdie/3", "print('again')")) == "again\n"


def test_output_a_kernel_sent_before_it_died_is_all_kept(kernel_chain) -> None:
    """The backend looked whether the kernel lived after each message it relayed, and when
    it did not, left the rest of what the kernel had sent unread. Here the kernel prints
    while the worker waits for the answer to its prompt, and dies: of its 300 lines, the
    cell showed none."""
    from harness import worker_pid
    from test_backend_contract import _alive, _descendants
    chain = kernel_chain
    code = ("import os, threading, time\n"
            "def die():\n"
            "    time.sleep(0.5)\n"
            "    for i in range(300): print(i, flush=True)\n"
            "    time.sleep(0.5)  # (what os._exit would cut off is sent)\n"
            "    os._exit(1)\n"
            "threading.Thread(target=die).start()\n"
            "input('wait: ')")
    assert evaluate(chain, "u/klost/1", code, kernel="python3")[0] == 202
    deadline = time.monotonic() + 60
    while not any(b["type"] == "input" for b in chain.update("u/klost/1", wait=2)[1]["output"]
                  .values()):
        assert time.monotonic() < deadline, "no prompt"
    pid = worker_pid(chain.devices[0], chain.update("u/klost/1")[1]["session"])
    processes = _descendants(pid)
    deadline = time.monotonic() + 15
    while all(_alive(p) for p in processes):  # the kernel ends; the worker still waits
        assert time.monotonic() < deadline, "the kernel did not end"
        time.sleep(0.05)
    body = json.dumps({"value": "x"}).encode()
    assert chain.http("POST", "/home/u/klost/1/input", body)[0] == 202
    doc = chain.wait_done("u/klost/1")
    # (the prompt and its answer are echoed when the answer comes, before what the kernel
    # printed meanwhile, as for a kernel that lives on)
    assert text(doc) == "wait: x\n" + "".join(f"{i}\n" for i in range(300)), text(doc)[-200:]
    assert [e["ename"] for e in errors(doc)] == ["KernelDied"]


def test_r_plot_arrives_as_png(chain) -> None:
    require_kernel("ir")
    chain.start_broker()
    chain.start_device("--kernels", "ir", "--kernel-prefork", "0")
    chain.start_gateway()
    doc = run(chain, "u/r/1", 'cat("r", 6*7, "\\n")\nplot(1:10)', kernel="ir", timeout=90)
    assert doc["status"] == "done", doc
    assert text(doc) == "r 42 \n"
    (image,) = [b for b in doc["output"].values() if b["type"] == "image"]
    assert image["mime"] == "image/png"
    assert base64.b64decode(image["data"], validate=True).startswith(PNG_SIGNATURE)
    doc = run(chain, "u/r/2", 'stop("boom")')
    assert doc["status"] == "error" and "boom" in errors(doc)[0]["evalue"]


def test_waits_for_a_device_with_its_kernel_and_is_placed_only_there(chain) -> None:
    require_kernel("bash")
    chain.start_broker()
    chain.start_gateway()
    # No device known yet: any kernel is taken and waits, as any request does.
    status, body = evaluate(chain, "u/q/1", 'echo "queued"', kernel="bash")
    assert (status, body["status"]) == (202, "needs_work")
    chain.start_device("--kernels", "python,bash", "--max-sessions", "3", name="shells")
    doc = chain.wait_done("u/q/1", timeout=60)
    assert (doc["status"], text(doc)) == ("done", "queued\n")
    chain.start_device("--kernels", "python", "--max-sessions", "8", name="roomy")
    # The roomy device has more free places, but no bash: bash sessions go to "shells".
    for n in range(2, 4):
        doc = run(chain, f"u/q{n}/1", 'echo "on $((n=3))"', kernel="bash")
        assert (doc["status"], text(doc)) == ("done", "on 3\n")
    doc = run(chain, "u/q4/1", 'print("python anywhere")')
    assert text(doc) == "python anywhere\n"


def test_readme_sqlite_backend_through_the_chain(chain) -> None:
    """The README's example backend, by its entry-point name, as the README runs it."""
    chain.start_broker()
    chain.start_device("--kernels", "python,sqlite")
    chain.start_gateway()
    doc = run(chain, "me/sql/1", "create table t(a); insert into t values (6*7); select a from t",
              kernel="sqlite")
    assert doc["status"] == "done", doc
    assert "a\n42" in json.dumps(doc["output"]).replace("\\n", "\n")
    doc = run(chain, "me/sql/2", "select nothing from t")
    assert [e["ename"] for e in errors(doc)] == ["OperationalError"]


def test_device_offers_every_installed_kernelspec_by_default(chain) -> None:
    from jupyter_client.kernelspec import KernelSpecManager
    chain.start_broker()
    chain.start_device("--kernels", "", "--kernel-prefork", "0")  # "": the default
    chain.start_gateway()
    status, body = chain.http("GET", "/kernels")
    assert status == 200
    installed = set(KernelSpecManager().find_kernel_specs())
    assert installed, "bin/test installs ipykernel's and bash_kernel's kernelspecs"
    assert {k["name"] for k in body["kernels"]} == {"python"} | installed


def test_idle_timeout_and_time_limit_end_the_kernel_too(chain) -> None:
    from harness import worker_pid
    from test_backend_contract import _alive, _descendants
    require_kernel("python3")
    chain.start_broker()
    device = chain.start_device("--kernels", "python3", "--kernel-prefork", "0",
                                "--idle-timeout", "2", "--exec-timeout", "3")
    chain.start_gateway()
    doc = run(chain, "u/idle/1", "print('up')", kernel="python3")
    assert text(doc) == "up\n"
    pid = worker_pid(device, doc["session"])
    processes = _descendants(pid)
    assert len(processes) >= 2, "the worker (or its init) and the kernel under it"
    device.wait_for_log(rf"session {doc['session']} closed \(idle timeout\)", timeout=30)
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in processes):
        assert time.monotonic() < deadline, "the kernel outlived its idle session"
        time.sleep(0.1)
    # --exec-timeout: a kernel stuck in a loop is stopped with its worker.
    doc = run(chain, "u/limit/1", "while True: pass", kernel="python3", timeout=60)
    assert [e["ename"] for e in errors(doc)] == ["TimeLimitExceeded"]
    after = text(run(chain, "u/limit/2", "import sys\nprint('ipykernel' in sys.modules)"))
    assert "started a fresh worker" in after and after.endswith("True\n")  # same kernel


def test_queued_cells_of_a_dead_worker_run_in_the_same_kernel(chain) -> None:
    require_kernel("python3")
    chain.start_broker()
    chain.start_device("--kernels", "python3", "--kernel-prefork", "0")
    chain.start_gateway()
    run(chain, "u/die/1", "print('up')", kernel="python3")
    # The kernel kills its worker (its parent) while the next cell waits in the queue.
    assert evaluate(chain, "u/die/2", "import os, time\ntime.sleep(1)\n"
                                      "os.kill(os.getppid(), 9)")[0] == 202
    assert evaluate(chain, "u/die/3", "import sys\nprint('ipykernel' in sys.modules)")[0] == 202
    assert chain.wait_done("u/die/2")["status"] == "error"
    doc = chain.wait_done("u/die/3", timeout=60)
    assert doc["status"] == "done", doc
    assert text(doc).endswith("True\n")


def test_a_kernel_killed_for_memory_names_the_limit(chain) -> None:
    """Tests that a kernel the session's memory limit ends fails its cell as the built-in
    session does, with MemoryLimitExceeded naming the limit and its amount: it said only
    "KernelDied ... (it was killed by signal 9 (SIGKILL))", which reads as a crash. A kernel
    that dies of itself still says KernelDied (test_a_kernel_that_ends_mid_cell_...)."""
    require_kernel("python3")
    chain.start_broker()
    # The budget (not --max-memory, whose address-space limit a big allocation hits
    # first, with MemoryError) bounds the session's cgroup: 400 MiB for each worker.
    # (two workers: the session's and the one kept ready, which starts with the device)
    chain.start_device("--kernels", "python3", "--prefork", "0", "--max-sessions", "1",
                       "--memory-budget", str(800 * 2**20))
    chain.start_gateway()
    # The kernel allocates only once the worker has its line: sent last before the kill, it
    # could still be in the kernel's own socket queue (its ZeroMQ thread not yet run on a
    # loaded machine), which nobody sends then (1 run in 4 under load ended with no output)
    assert evaluate(chain, "u/oom/1", "x = 6\nprint('before', flush=True)\ninput('go? ')\n"
                    "y = b'x' * (600 * 2**20)", kernel="python3")[0] == 202
    wait_prompt(chain, "u/oom/1")
    until(lambda: text(chain.update("u/oom/1", wait=2)[1]) == "before\n", "the line stored")
    assert answer(chain, "u/oom/1", "")[0] == 202
    doc = chain.wait_done("u/oom/1", timeout=60)
    (error,) = errors(doc)
    assert error["ename"] == "MemoryLimitExceeded", error
    assert "400 MiB of memory together (--max-memory, --memory-budget)" in error["evalue"]
    assert "was started again" in error["evalue"], error
    assert text(doc) == "before\ngo? \n", doc  # (the prompt and its answer echoed)
    # The next cell runs in a fresh kernel. There a program it runs is what the OOM killer
    # ends (the kernel lives on): bash said only "Killed", and nothing named the limit.
    doc = run(chain, "u/oom/2", "import subprocess, sys\nprint('fresh', 'x' in globals())\n"
              "print(subprocess.run([sys.executable, '-c', \"x = b'x' * (600 * 2**20)\"])"
              ".returncode)")
    assert (doc["status"], text(doc).partition("[")[0]) == ("done", "fresh False\n-9\n"), doc
    assert text(doc).endswith("[cellbus: the session's processes used more than 400 MiB of "
                              "memory together (--max-memory, --memory-budget): the "
                              "out-of-memory killer ended one of them]\n"), text(doc)

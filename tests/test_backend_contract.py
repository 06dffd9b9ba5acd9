"""The session-backend contract: one suite that every backend passes.

Each backend (the built-in Python session, the Jupyter backend with ipykernel, bash_kernel
and IRkernel, and the README's SQLite example) runs in a real worker process, spoken to over
its real socketpair link as the overseer does (see test_session_worker.py), and must: answer
kernel_info, print, give a result, report an error and carry on, keep state between cells,
stop a running cell on SIGINT (the device's interrupt) and carry on, and shut down leaving no
process behind. The store backends have the same kind of suite: test_store_contract.py.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernels import BACKENDS, Cells, require_kernel
from test_session_worker import Worker, of_type, reply, stream_text

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=BACKENDS, ids=lambda c: c.name)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Cells, Worker]]:
    cells: Cells = request.param
    if cells.jupyter:
        require_kernel(cells.name)
    # TMPDIR: where a worker outside the sandbox keeps its kernel's connection files.
    worker = Worker(tmp_path, "--backend", cells.name,
                    env={**os.environ, "TMPDIR": str(tmp_path)})
    worker.sock.settimeout(90)  # a kernel starts in the worker before its first answer
    yield cells, worker
    worker.close()


def shown(records: list[dict]) -> str:
    """All text a cell showed: streams, displays and its result."""
    text = stream_text(records)
    for r in of_type(records, "display_data") + of_type(records, "execute_result"):
        text += r["content"]["data"].get("text/plain", "")
    return text


def test_kernel_info_and_queries(backend: tuple[Cells, Worker]) -> None:
    """Every backend answers kernel_info, and a client's questions about code with the
    replies Jupyter's spec gives (those that cannot answer: the empty ones), each between
    busy and idle (one worker for both: a kernel takes seconds to start)."""
    cells, worker = backend
    asked = worker.send("kernel_info_request", {})
    records = worker.collect()  # a client's request, answered as its queries are
    assert [(r["parent"], r["msg_type"]) for r in records] == [
        (asked, "status"), (asked, "kernel_info_reply"), (asked, "status")], records
    info = records[1]
    assert info["content"]["status"] == "ok"
    assert info["content"]["language_info"]["name"]
    for query in ("complete_request", "inspect_request", "is_complete_request"):
        msg_id = worker.send(query, {"code": "pri", "cursor_pos": 3, "detail_level": 0})
        records = worker.collect()
        assert all(r["parent"] == msg_id for r in records)
        assert [r["msg_type"] for r in records] == [
            "status", query.replace("_request", "_reply"), "status"], records
        answer = records[1]["content"]
        assert answer["status"] in ("ok", "complete", "incomplete", "invalid", "unknown"), answer
        if query == "complete_request":
            assert isinstance(answer["matches"], list) and answer["cursor_end"] == 3, answer
        elif query == "inspect_request":
            assert isinstance(answer["found"], bool) and isinstance(answer["data"], dict)


def test_print_and_result(backend: tuple[Cells, Worker]) -> None:
    cells, worker = backend
    if cells.hello is not None:
        records = worker.execute(cells.hello)
        assert stream_text(records) == "hello\n"
        assert reply(records)["status"] == "ok"
    if cells.result is not None:
        code, text = cells.result
        records = worker.execute(code)
        assert shown(records) == text  # IRkernel shows values as display_data
        for result in of_type(records, "execute_result"):
            assert result["content"]["execution_count"] == reply(records)["execution_count"]


def test_error_then_next_cell(backend: tuple[Cells, Worker]) -> None:
    cells, worker = backend
    code, ename = cells.error
    records = worker.execute(code)
    (error,) = of_type(records, "error")
    assert error["content"]["ename"] == ename
    assert error["content"]["traceback"], "a traceback (or at least one line) to show"
    assert reply(records)["status"] == "error"
    assert [r["msg_type"] for r in records][-2:] == ["execute_reply", "status"]
    assert "5" in shown(worker.execute(cells.define) + worker.execute(cells.show))


#: The backends that run user code a SIGINT can stop (the SQLite example runs a statement in
#: C, which cannot be interrupted in one: it has no ``loop`` and no such test).
INTERRUPTIBLE = [c for c in BACKENDS if c.loop is not None]


@pytest.mark.parametrize("backend", INTERRUPTIBLE, ids=lambda c: c.name, indirect=True)
def test_interrupt_then_next_cell(backend: tuple[Cells, Worker]) -> None:
    cells, worker = backend
    assert cells.loop is not None
    worker.execute(cells.define)
    msg_id = worker.submit(cells.loop)
    for expected in ("status", "execute_input"):
        record = worker.link.recv()
        assert record is not None and record["msg_type"] == expected
    # One SIGINT, at once: the kernel may not even have the request yet (a backend must
    # neither garble what it is sending nor lose the interrupt).
    worker.proc.send_signal(signal.SIGINT)
    worker.sock.settimeout(30)
    records = worker.collect()
    assert all(r["parent"] == msg_id for r in records)
    assert reply(records)["status"] == "error"
    # Every backend's interrupted cell says so: bash_kernel replies "abort" with no ename,
    # which showed as "Error: " (empty) where Python and R say KeyboardInterrupt.
    assert [r["content"]["ename"] for r in of_type(records, "error")] == ["KeyboardInterrupt"]
    after = worker.execute(cells.show)
    assert "5" in shown(after), ("the session lived on", records, after, worker.stderr())


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = {int(k) for k in f.read().split()}
                todo += kids - found
                found |= kids
        except OSError:
            pass
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("how", ["shutdown_request", "link closed", "SIGKILL"])
def test_ends_leaving_no_process(backend: tuple[Cells, Worker], how: str) -> None:
    cells, worker = backend
    worker.execute(cells.define)
    children = _descendants(worker.proc.pid)
    if how == "shutdown_request":
        worker.send("shutdown_request", {"restart": False})
        record = worker.link.recv()
        assert record is not None and record["msg_type"] == "shutdown_reply"
    elif how == "link closed":
        worker.sock.close()
    else:
        worker.proc.kill()
    worker.proc.wait(30)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in children if _alive(p)], "a kernel outlived its worker"


def test_readme_shows_the_sqlite_backend_this_suite_runs() -> None:
    """The README's example backend is session/sqlite_example.py, line for line, and short."""
    readme = (ROOT / "README.rst").read_text()
    start = readme.index(".. code-block:: python\n\n", readme.index("Session backends\n"))
    block = readme[start:].split("\n\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    shown = "\n".join(lines).strip() + "\n"
    example = (ROOT / "session" / "sqlite_example.py").read_text()
    assert shown == example
    assert len(example.splitlines()) < 40


@pytest.mark.timeout(180)  # two ipykernel starts, each several seconds on a busy machine
def test_a_kernel_that_dies_is_started_again(tmp_path: Path) -> None:
    """Jupyter backend only: a kernel that exits mid-cell fails that cell, and the next cell
    runs in a fresh kernel of the same kind (not in a dead one, for ever)."""
    require_kernel("python3")
    worker = Worker(tmp_path, "--backend", "python3",
                    env={**os.environ, "TMPDIR": str(tmp_path)})
    worker.sock.settimeout(90)
    try:
        worker.execute("x = 1")
        records = worker.execute("import os; os._exit(3)")
        assert [e["content"]["ename"] for e in of_type(records, "error")] == ["KernelDied"]
        assert stream_text(worker.execute("print('x' in dir())")) == "False\n"
    finally:
        worker.close()

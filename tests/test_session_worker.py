"""The session worker as a real process, spoken to over a real socketpair.

Each test starts ``python -m session.worker`` with one end of a ``socketpair`` and talks to it
with ``protocol.link.WorkerLink``, as the overseer does.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from harness import until
from protocol.link import WorkerLink

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FILE_MIME = "application/x-cellbus-file+json"


class Worker:
    """One worker process and the overseer's end of its link."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.workdir = tmp_path / "work"
        self.workdir.mkdir(exist_ok=True)
        self.stderr_path = tmp_path / "worker-stderr.txt"
        ours, theirs = socket.socketpair()
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "session.worker", "--fd", str(theirs.fileno()),
                 "--workdir", str(self.workdir), *args],
                pass_fds=(theirs.fileno(),), cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err)
        theirs.close()
        ours.settimeout(15)
        self.sock = ours
        self.link = WorkerLink(ours)
        self._ids = 0
        self.times: list[float] = []  # time.monotonic() at which each collected record came

    def send(self, msg_type: str, content: dict[str, Any]) -> str:
        self._ids += 1
        msg_id = f"req-{self._ids}"
        self.link.send({"msg_type": msg_type, "msg_id": msg_id, "content": content})
        return msg_id

    def submit(self, code: str, silent: bool = False) -> str:
        return self.send("execute_request", {
            "code": code, "silent": silent, "store_history": not silent,
            "user_expressions": {}, "allow_stdin": True, "stop_on_error": True})

    def collect(self) -> list[dict[str, Any]]:
        """Records up to and including ``status: idle``."""
        records, self.times = [], []
        while True:
            record = self.link.recv()
            if record is None:
                raise AssertionError(f"worker closed the link; stderr: {self.stderr()}")
            records.append(record)
            self.times.append(time.monotonic())
            if record["msg_type"] == "status" and \
                    record["content"]["execution_state"] == "idle":
                return records

    def execute(self, code: str, silent: bool = False) -> list[dict[str, Any]]:
        msg_id = self.submit(textwrap.dedent(code), silent=silent)
        records = self.collect()
        assert all(r["parent"] == msg_id for r in records)
        return records

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def close(self) -> None:
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    w = Worker(tmp_path)
    yield w
    w.close()


def of_type(records: list[dict[str, Any]], msg_type: str) -> list[dict[str, Any]]:
    return [r for r in records if r["msg_type"] == msg_type]


def stream_text(records: list[dict[str, Any]], name: str = "stdout") -> str:
    return "".join(r["content"]["text"] for r in of_type(records, "stream")
                   if r["content"]["name"] == name)


def reply(records: list[dict[str, Any]]) -> dict[str, Any]:
    (rec,) = of_type(records, "execute_reply")
    return rec["content"]


def result_text(records: list[dict[str, Any]]) -> str:
    (rec,) = of_type(records, "execute_result")
    return rec["content"]["data"]["text/plain"]


def files(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Announced files by name: {"info": json dict, "buffers": [...]}."""
    out = {}
    for r in of_type(records, "display_data"):
        info = r["content"]["data"].get(FILE_MIME)
        if info is not None:
            out[info["name"]] = {"info": info, "buffers": r.get("buffers", [])}
    return out


# --- framing -------------------------------------------------------------------------------

def test_message_order_and_counts(worker: Worker) -> None:
    """busy, execute_input, output, execute_result, execute_reply, idle; count goes up."""
    records = worker.execute("print('hi')\n40 + 2")
    assert [r["msg_type"] for r in records] == [
        "status", "execute_input", "stream", "execute_result", "execute_reply", "status"]
    assert records[0]["content"] == {"execution_state": "busy"}
    assert records[1]["content"] == {"code": "print('hi')\n40 + 2", "execution_count": 1}
    assert records[2]["content"] == {"name": "stdout", "text": "hi\n"}
    assert records[3]["content"] == {"execution_count": 1, "data": {"text/plain": "42"},
                                     "metadata": {}}
    assert records[4]["content"] == {"status": "ok", "execution_count": 1,
                                     "user_expressions": {}, "payload": []}
    assert records[5]["content"] == {"execution_state": "idle"}
    assert reply(worker.execute("x = 1"))["execution_count"] == 2


def test_warm_up_leaves_no_trace(worker: Worker) -> None:
    """The worker warms up before its first request (sending nothing, or the first records
    read would not all answer it): its first cell is still <cell-1>, and `_` is unset."""
    error = of_type(worker.execute("1/0"), "error")[0]["content"]
    assert any('File "<cell-1>", line 1' in line for line in error["traceback"]), error
    error = of_type(worker.execute("_"), "error")[0]["content"]
    assert error["ename"] == "NameError"


def test_silent_execution_is_quiet_and_not_counted(worker: Worker) -> None:
    records = worker.execute("y = 7\ny", silent=True)
    assert [r["msg_type"] for r in records] == ["status", "execute_reply", "status"]
    assert reply(worker.execute("y"))["execution_count"] == 1


def test_kernel_info(worker: Worker) -> None:
    msg_id = worker.send("kernel_info_request", {})
    records = worker.collect()  # a client's request: busy, the reply, idle
    assert [(r["parent"], r["msg_type"]) for r in records] == [
        (msg_id, "status"), (msg_id, "kernel_info_reply"), (msg_id, "status")], records
    record = records[1]
    info = record["content"]
    assert info["status"] == "ok" and info["protocol_version"] == "5.4"
    assert info["implementation"] == "cellbus"
    assert info["implementation_version"] == metadata.version("cellbus")
    assert info["language_info"]["name"] == "python"
    assert info["language_info"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert info["language_info"]["file_extension"] == ".py"
    assert isinstance(info["banner"], str)


def test_shutdown_request_exits_zero(worker: Worker) -> None:
    worker.send("shutdown_request", {"restart": False})
    record = worker.link.recv()
    assert record is not None and record["msg_type"] == "shutdown_reply"
    assert record["content"] == {"status": "ok", "restart": False}
    assert worker.proc.wait(5) == 0
    assert worker.link.recv() is None


def test_eof_exits_zero_quietly(worker: Worker) -> None:
    worker.execute("print('x')")
    worker.sock.shutdown(socket.SHUT_WR)
    assert worker.proc.wait(5) == 0
    assert worker.stderr() == ""


def test_unknown_request_is_ignored(worker: Worker) -> None:
    worker.send("no_such_request", {})
    assert result_text(worker.execute("3 * 3")) == "9"


# --- streams -------------------------------------------------------------------------------

@pytest.mark.timeout(20)
def test_output_streams_while_code_runs(worker: Worker) -> None:
    records = worker.execute("import time\nprint(2)\ntime.sleep(2)\nprint(3)")
    times = {r["content"]["text"]: t for r, t in zip(records, worker.times)
             if r["msg_type"] == "stream"}
    assert set(times) == {"2\n", "3\n"}
    assert times["3\n"] - times["2\n"] >= 1.5


def test_rapid_writes_are_coalesced(worker: Worker) -> None:
    records = worker.execute("for i in range(10000):\n    print(i)")
    streams = of_type(records, "stream")
    assert len(streams) < 50
    assert stream_text(records) == "".join(f"{i}\n" for i in range(10000))


def test_stderr_is_a_separate_stream(worker: Worker) -> None:
    records = worker.execute("""\
        import os, sys
        print("out")
        print("err", file=sys.stderr)
        os.write(2, b"err2\\n")
        sys.stderr.flush()
        """)
    assert stream_text(records, "stdout") == "out\n"
    assert stream_text(records, "stderr") == "err\nerr2\n"


def test_descriptor_output_is_captured_in_order(worker: Worker) -> None:
    records = worker.execute("""\
        import os, subprocess, sys
        os.system("echo hi")
        os.write(1, b"raw\\n")
        print("python")
        subprocess.run([sys.executable, "-c", "print('child')"])
        sys.stdout.buffer.write("bytes \\u00e9\\n".encode())
        """)
    assert stream_text(records) == "hi\nraw\npython\nchild\nbytes \u00e9\n"


def test_a_character_cut_at_a_cells_end_stays_in_that_cell(worker: Worker) -> None:
    """Tests that the first bytes of a character a cell wrote to a descriptor, and never
    ended, show in that cell as a replacement character, not at the start of the next
    cell's descriptor output ("\ufffddef" in the next cell, "abc" in this one)."""
    first = worker.execute("import os\nos.write(1, b'abc\\xe2\\x82')\nos.write(2, b'\\xc3')\nNone")
    assert stream_text(first) == "abc\ufffd"
    assert stream_text(first, "stderr") == "\ufffd"
    second = worker.execute("import os\nos.write(1, b'def\\n')\nos.write(2, b'err\\n')\nNone")
    assert stream_text(second) == "def\n"
    assert stream_text(second, "stderr") == "err\n"


# --- execution -----------------------------------------------------------------------------

def test_namespace_persists_and_is_main(worker: Worker) -> None:
    worker.execute("x = 5")
    records = worker.execute("print(x, __name__)\nprint(sorted(k for k in globals() "
                             "if not k.startswith('__')))")
    assert stream_text(records) == (
        "5 __main__\n['block_api', 'button', 'checkbox', 'color_selector', 'display', "
        "'input_box', 'input_grid', 'interact', 'range_slider', 'selector', 'slider', 'x']\n")
    # Starting a worker imports no plotting library; user code decides.
    assert result_text(worker.execute("import sys\n'matplotlib' in sys.modules")) == "False"


def test_user_classes_pickle(worker: Worker) -> None:
    worker.execute("class Point:\n    def __init__(self, x): self.x = x")
    records = worker.execute("import pickle\npickle.loads(pickle.dumps(Point(4))).x")
    assert result_text(records) == "4"


def test_execute_result_and_underscore(worker: Worker) -> None:
    assert result_text(worker.execute("1+1")) == "2"
    assert not of_type(worker.execute("None"), "execute_result")
    assert not of_type(worker.execute("z = 3"), "execute_result")
    assert result_text(worker.execute("_ * 10")) == "20"


def test_name_error_traceback_shows_only_user_code(worker: Worker) -> None:
    records = worker.execute("def f():\n    return undefined_name\n\nf()")
    (error,) = of_type(records, "error")
    content = error["content"]
    assert content["ename"] == "NameError"
    assert "undefined_name" in content["evalue"]
    text = "".join(content["traceback"])
    assert "return undefined_name" in text and "<cell-" in text
    assert "session/" not in text and "worker.py" not in text
    assert text.startswith("Traceback (most recent call last)")
    r = reply(records)
    assert r["status"] == "error" and r["ename"] == "NameError"
    assert r["traceback"] == content["traceback"]
    # A later cell calling a function from an earlier one still shows that cell's source.
    later = "".join(of_type(worker.execute("f()"), "error")[0]["content"]["traceback"])
    assert "return undefined_name" in later


def test_syntax_error_shows_only_the_error_lines(worker: Worker) -> None:
    records = worker.execute("x = (")
    (error,) = of_type(records, "error")
    assert error["content"]["ename"] == "SyntaxError"
    text = "".join(error["content"]["traceback"])
    assert "x = (" in text and "Traceback" not in text and "session/" not in text
    assert reply(records)["status"] == "error"
    assert result_text(worker.execute("2 + 2")) == "4"


@pytest.mark.parametrize("code, evalue", [("import sys\nsys.exit(3)", "3"),
                                          ("exit()", "None")])
def test_system_exit_is_an_error_not_an_exit(worker: Worker, code: str, evalue: str) -> None:
    records = worker.execute(code)
    (error,) = of_type(records, "error")
    assert error["content"]["ename"] == "SystemExit"
    assert error["content"]["evalue"] == evalue
    assert result_text(worker.execute("1 + 1")) == "2"
    assert worker.proc.poll() is None


def signal_pending(pid: int) -> bool:
    """Whether a signal sent to ``pid`` is not yet delivered (/proc/PID/status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return any(int(line.split()[1], 16) for line in status.splitlines()
               if line.startswith(("SigPnd:", "ShdPnd:")))


#: nanosleep and clock_nanosleep on x86_64, then on arm64 (/proc/PID/syscall's first field).
SLEEP_SYSCALLS = {"35", "230", "101", "115"}


def in_sleep(pid: int) -> bool:
    """Whether ``pid``'s main thread is blocked in a sleep (as time.sleep makes it)."""
    wchan = Path(f"/proc/{pid}/wchan").read_text()
    try:
        call = Path(f"/proc/{pid}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        call = ""
    return "nanosleep" in wchan or call in SLEEP_SYSCALLS


@pytest.mark.timeout(20)
def test_sigint_interrupts_running_code(worker: Worker) -> None:
    worker.execute("pass")  # started and idle
    os.kill(worker.proc.pid, signal.SIGINT)  # while idle: ignored
    until(lambda: not signal_pending(worker.proc.pid), "the idle worker to take the SIGINT")
    worker.submit("import time\ntime.sleep(30)")
    first = worker.link.recv()
    second = worker.link.recv()
    assert first is not None and second is not None
    assert second["msg_type"] == "execute_input"
    until(lambda: in_sleep(worker.proc.pid), "the cell to be in time.sleep")
    started = time.monotonic()
    os.kill(worker.proc.pid, signal.SIGINT)
    records = worker.collect()
    assert time.monotonic() - started < 5
    (error,) = of_type(records, "error")
    assert error["content"]["ename"] == "KeyboardInterrupt"
    assert "time.sleep(30)" in "".join(error["content"]["traceback"])
    assert reply(records)["status"] == "error"
    assert result_text(worker.execute("1 + 1")) == "2"


# --- the block API and files ---------------------------------------------------------------

def test_new_files_are_announced(worker: Worker) -> None:
    (worker.workdir / "old.txt").write_text("unchanged")
    (worker.workdir / "edited.txt").write_text("before")
    png = PNG_SIGNATURE + bytes(range(256)) * 4
    records = worker.execute(f"""\
        import os
        with open("out.txt", "w") as f:
            f.write("hello files")
        with open("plot.png", "wb") as f:
            f.write({png!r})
        os.makedirs("sub", exist_ok=True)
        with open("sub/data.unknownext", "wb") as f:
            f.write(b"\\x00\\x01")
        with open("edited.txt", "a") as f:
            f.write(", after")
        """)
    found = files(records)
    assert set(found) == {"out.txt", "plot.png", "sub/data.unknownext", "edited.txt"}
    assert found["out.txt"]["info"] == {"name": "out.txt", "size": 11, "mime": "text/plain"}
    assert found["out.txt"]["buffers"] == [b"hello files"]
    assert found["plot.png"]["info"]["mime"] == "image/png"
    assert found["plot.png"]["info"]["size"] == len(png)
    assert found["plot.png"]["buffers"] == [png]
    assert found["sub/data.unknownext"]["info"]["mime"] == "application/octet-stream"
    assert found["edited.txt"]["buffers"] == [b"before, after"]
    # Announced once: the next cell does not repeat them.
    assert not files(worker.execute("1"))


def test_large_files_are_announced_without_content(tmp_path: Path) -> None:
    worker = Worker(tmp_path, "--max-file-size", "100")
    try:
        records = worker.execute("""\
            open("big.bin", "wb").write(b"x" * 101)
            open("small.bin", "wb").write(b"y" * 100)
            """)
    finally:
        worker.close()
    found = files(records)
    assert found["big.bin"]["info"] == {"name": "big.bin", "size": 101,
                                        "mime": "application/octet-stream",
                                        "too_large": True}
    assert found["big.bin"]["buffers"] == []
    assert found["small.bin"]["buffers"] == [b"y" * 100]


def test_links_and_special_files_are_never_announced(worker: Worker) -> None:
    (worker.workdir / "planted").symlink_to("/etc/passwd")
    records = worker.execute("""\
        import os
        os.symlink("/etc/passwd", "link_to_passwd")
        os.symlink("/etc", "link_to_etc")
        os.mkfifo("a_fifo")
        os.makedirs(".hidden", exist_ok=True)
        open(".hidden/secret.txt", "w").write("s")
        open(".dotfile", "w").write("d")
        open("real.txt", "w").write("real")
        os.utime("planted", follow_symlinks=False)
        """)
    assert set(files(records)) == {"real.txt"}
    for r in of_type(records, "display_data"):
        assert all(b"root:" not in buf for buf in r.get("buffers", []))


def test_block_api_new_block_announces_files_so_far(worker: Worker) -> None:
    records = worker.execute("""\
        open("first.txt", "w").write("1")
        print("before")
        block_api.new_block()
        print("after")
        open("second.txt", "w").write("2")
        """)
    kinds = [(r["msg_type"], r["content"].get("text") or
              r["content"].get("data", {}).get("text/plain"))
             for r in records if r["msg_type"] in ("stream", "display_data")]
    assert kinds == [("stream", "before\n"), ("display_data", "first.txt"),
                     ("stream", "after\n"), ("display_data", "second.txt")]


# --- rich output ---------------------------------------------------------------------------

def shown_in_order(records: list[dict]) -> list[str]:
    """The stream and display_data messages' types in order, a run of streams as one: a
    print is two writes (the text, then "\\n"), and a loaded machine may flush the stream
    between them."""
    kinds = [r["msg_type"] for r in records if r["msg_type"] in ("stream", "display_data")]
    return [k for i, k in enumerate(kinds) if k != "stream" or i == 0 or kinds[i - 1] != k]


def test_ipythons_display_shows_rich_output(worker: Worker) -> None:
    """``from IPython.display import display, HTML``, as notebooks show rich output: the
    session shows it as its own display does (before, IPython's display, which has no
    shell here, printed '<IPython.core.display.HTML object>'); raw=True shows a mimebundle;
    IPython's clear_output is a clear_output message (before, an escape sequence printed)."""
    pytest.importorskip("IPython")
    records = worker.execute("""\
        from IPython.display import display, HTML, Markdown
        display(HTML("<b>table</b>"), Markdown("*m*"))
        import IPython.display
        IPython.display.display({"text/html": "<i>raw</i>", "text/plain": "raw"}, raw=True)
        from IPython.display import clear_output
        for i in range(2):
            clear_output(wait=True)
            print(i)
        """)
    shown = [r["content"]["data"] for r in of_type(records, "display_data")]
    assert [d.get("text/html") or d.get("text/markdown") for d in shown] == [
        "<b>table</b>", "*m*", "<i>raw</i>"], shown
    assert [r["content"] for r in of_type(records, "clear_output")] == [{"wait": True}] * 2
    assert stream_text(records) == "0\n1\n"


def test_display_png_html_and_failing_repr(worker: Worker) -> None:
    records = worker.execute("""\
        class Png:
            def _repr_png_(self):
                return b"\\x89PNG fake bytes"
            def __repr__(self):
                return "<Png>"
        class Html:
            def _repr_html_(self):
                return "<b>bold</b>"
        class Broken:
            def _repr_html_(self):
                raise RuntimeError("no html today")
            def __repr__(self):
                return "<Broken>"
        print("start")
        display(Png(), Html(), Broken())
        print("end")
        Html()
        """)
    shown = [r["content"] for r in of_type(records, "display_data")]
    assert len(shown) == 3
    png, html, broken = shown
    assert base64.b64decode(png["data"]["image/png"]) == b"\x89PNG fake bytes"
    assert png["data"]["text/plain"] == "<Png>"
    assert html["data"]["text/html"] == "<b>bold</b>"
    assert broken["data"] == {"text/plain": "<Broken>"}
    assert stream_text(records) == "start\nend\n"
    (result,) = of_type(records, "execute_result")
    assert result["content"]["data"]["text/html"] == "<b>bold</b>"
    assert reply(records)["status"] == "ok"
    assert shown_in_order(records) == ["stream", "display_data", "display_data",
                                       "display_data", "stream"]


@pytest.mark.timeout(30)
def test_matplotlib_figure_becomes_one_png(worker: Worker) -> None:
    records = worker.execute("""\
        import matplotlib.pyplot as plt
        print("plotting")
        plt.plot([1, 2, 3])
        """)
    (shown,) = of_type(records, "display_data")
    data = shown["content"]["data"]
    assert base64.b64decode(data["image/png"]).startswith(PNG_SIGNATURE)
    assert data["text/plain"].startswith("<Figure")
    assert stream_text(records, "stderr") == ""
    # stdout closes before the plot (seed 000, step 10)
    assert shown_in_order(records) == ["stream", "display_data"]
    assert not of_type(worker.execute("plt.get_fignums()"), "display_data")


@pytest.mark.timeout(30)
def test_plt_show_sends_figures_at_once(worker: Worker) -> None:
    records = worker.execute("""\
        import time
        import matplotlib.pyplot as plt
        plt.plot([1, 2, 3])
        plt.show()
        time.sleep(1)
        print("after show")
        """)
    (shown,) = of_type(records, "display_data")
    times = dict(zip((id(r) for r in records), worker.times))
    (after,) = of_type(records, "stream")
    assert times[id(after)] - times[id(shown)] >= 0.8
    assert stream_text(records, "stderr") == ""


@pytest.mark.timeout(30)
def test_matplotlib_preloaded_before_serve(tmp_path: Path) -> None:
    """A template process may import pyplot before it becomes a worker."""
    ours, theirs = socket.socketpair()
    workdir = tmp_path / "work"
    workdir.mkdir()
    script = ("import sys, matplotlib.pyplot\n"
              "from session.worker import main\n"
              "sys.exit(main())")
    proc = subprocess.Popen(
        [sys.executable, "-c", script, "--fd", str(theirs.fileno()), "--workdir", str(workdir)],
        pass_fds=(theirs.fileno(),), cwd=ROOT, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    theirs.close()
    ours.settimeout(15)
    link = WorkerLink(ours)
    try:
        link.send({"msg_type": "execute_request", "msg_id": "m", "content": {
            "code": "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()",
            "silent": False, "store_history": True}})
        records = []
        while not records or records[-1]["content"].get("execution_state") != "idle":
            record = link.recv()
            assert record is not None
            records.append(record)
    finally:
        ours.close()
        proc.wait(10)
    (shown,) = of_type(records, "display_data")
    assert base64.b64decode(shown["content"]["data"]["image/png"]).startswith(PNG_SIGNATURE)
    assert stream_text(records, "stderr") == ""
    assert proc.returncode == 0


# --- backends ------------------------------------------------------------------------------

def test_a_plugged_in_backend_gets_the_same_framing(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "shout_backend.py").write_text(textwrap.dedent("""\
        from session.backend import ExecuteOutcome, SessionBackend

        class ShoutBackend(SessionBackend):
            def execute(self, code, *, silent=False, store_history=True):
                self.out.stream("stdout", code.upper())
                self.out.display({"text/plain": "shown"})
                if code == "fail":
                    return ExecuteOutcome.failed("Oops", "it failed", ["Oops: it failed"])
                return ExecuteOutcome(result={"text/plain": repr(len(code))})

            def kernel_info(self):
                return {"language_info": {"name": "shout"}, "banner": "SHOUT"}
        """))
    env = dict(os.environ, PYTHONPATH=f"{plugins}{os.pathsep}{ROOT}")
    worker = Worker(tmp_path, "--backend", "shout_backend:ShoutBackend", env=env)
    try:
        records = worker.execute("hello")
        failed = worker.execute("fail")
    finally:
        worker.close()
    assert [r["msg_type"] for r in records] == [
        "status", "execute_input", "stream", "display_data", "execute_result",
        "execute_reply", "status"]
    assert stream_text(records) == "HELLO"
    assert result_text(records) == "5"
    assert of_type(failed, "error")[0]["content"]["ename"] == "Oops"
    assert reply(failed)["execution_count"] == 2


def test_bad_backend_spec_exits_with_status_2(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        proc = subprocess.run(
            [sys.executable, "-m", "session.worker", "--fd", str(theirs.fileno()),
             "--workdir", str(tmp_path), "--backend", "no_such_module:Nothing"],
            pass_fds=(theirs.fileno(),), cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2
    assert "--backend" in proc.stderr

"""input(), getpass() and sys.stdin in a real worker process, answered over its real link."""

from __future__ import annotations

import signal
import textwrap
from typing import Any

from protocol import msgtypes as mt
from test_session_worker import Worker, of_type, reply, stream_text, worker  # noqa: F401


def ask(worker: Worker, code: str) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """Run ``code`` up to its first prompt: (request id, the prompt's record, records so far)."""
    msg_id = worker.submit(textwrap.dedent(code))
    records = []
    while True:
        record = worker.link.recv()
        assert record is not None, worker.stderr()
        records.append(record)
        if record["msg_type"] == mt.INPUT_REQUEST:
            return msg_id, record, records
        assert record["msg_type"] != "execute_reply", records


def answer(worker: Worker, content: dict[str, Any]) -> None:
    worker.link.send({"msg_type": mt.INPUT_REPLY, "msg_id": "answer", "content": content})


def test_input_blocks_on_the_answer_and_echoes_it(worker: Worker) -> None:
    msg_id, prompt, before = ask(worker, """
        print("first")
        name = input("Name? ")
        print("hi", name)
        """)
    assert prompt["parent"] == msg_id
    assert prompt["content"] == {"prompt": "Name? ", "password": False}
    assert stream_text(before) == "first\n"  # output before the prompt is sent before it
    answer(worker, {"value": "Ada"})
    records = worker.collect()
    assert reply(records)["status"] == "ok"
    assert stream_text(records) == "Name? Ada\nhi Ada\n"


def test_getpass_is_a_password_prompt_whose_answer_is_not_echoed(worker: Worker) -> None:
    _, prompt, _ = ask(worker, """
        import getpass
        secret = getpass.getpass()
        print(len(secret))
        """)
    assert prompt["content"] == {"prompt": "Password: ", "password": True}
    answer(worker, {"value": "hunter2"})
    records = worker.collect()
    assert stream_text(records) == "Password: \n7\n"
    assert not any("hunter2" in repr(r) for r in records)


def test_stdin_readline_asks_with_an_empty_prompt(worker: Worker) -> None:
    _, prompt, _ = ask(worker, "import sys\nline = sys.stdin.readline()\nprint(repr(line))")
    assert prompt["content"] == {"prompt": "", "password": False}
    answer(worker, {"value": "42"})
    assert stream_text(worker.collect()) == "42\n'42\\n'\n"


def test_interrupt_while_waiting_raises_keyboard_interrupt(worker: Worker) -> None:
    ask(worker, "input('wait? ')")
    worker.proc.send_signal(signal.SIGINT)
    records = worker.collect()
    assert reply(records)["ename"] == "KeyboardInterrupt"
    # The session goes on: a later answer is not mistaken for anything, input works again.
    answer(worker, {"value": "late"})
    _, prompt, _ = ask(worker, "x = input('again? ')")
    answer(worker, {"value": "yes"})
    assert reply(worker.collect())["status"] == "ok"
    assert stream_text(worker.execute("print(x)")) == "yes\n"


def test_an_answer_with_an_error_ends_input_with_input_timeout(worker: Worker) -> None:
    ask(worker, "input('name? ')")
    answer(worker, {"value": mt.INPUT_EOF, "error": "no answer within 1 s (--input-timeout)"})
    records = worker.collect()
    assert reply(records)["ename"] == "InputTimeout"
    assert "--input-timeout" in of_type(records, "error")[0]["content"]["evalue"]


def test_end_of_input_is_eof_error(worker: Worker) -> None:
    ask(worker, "input('name? ')")
    answer(worker, {"value": mt.INPUT_EOF})
    assert reply(worker.collect())["ename"] == "EOFError"

"""The gateway's HTTP handlers in process: tornado's AsyncHTTPTestCase against a fake bus link.

The application is the real one (``gateway.app.make_app``: routes, guard, errors, pacing) on
a fresh loopback port; only the link to the broker is replaced, at the edge, by
:class:`FakeLink`, which answers each request type with what a test scripts and records what
it was asked. What a broker does is the process suites' subject; here it is what the gateway
makes of a request and of the broker's answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

import tornado.web
from tornado.testing import AsyncHTTPTestCase, gen_test

from gateway.app import make_app
from gateway.bus import BrokerUnavailable, Listener
from gateway.outbox import WINDOW
from protocol import msgtypes as mt
from protocol.wire import Message, Session

Answer = Callable[[dict[str, Any], tuple[str, str, str]], dict[str, Any] | Exception]


class FakeLink:
    """What the handlers use of :class:`gateway.bus.BrokerLink`: ``request`` answers from
    ``answers`` (msg_type -> content, or an exception to raise, or a function of the
    request's content and address giving either); output is fed with :meth:`publish`."""

    def __init__(self) -> None:
        self.session = Session(b"fake-link-key")
        self.auth = "none"
        self.answers: dict[str, dict[str, Any] | Exception | Answer] = {}
        self.asked: list[tuple[str, dict[str, Any], tuple[str, str, str]]] = []
        self.listeners: set[Listener] = set()
        self.keyed: dict[tuple[str, str] | None, set[Listener]] = {}
        #: Called after each request is recorded.
        self.on_ask: Callable[[], None] = lambda: None
        #: The types of the requests asked on the connection for big answers (``bulk``).
        self.bulk: list[str] = []
        #: Called with each request's type and address once it is answered (or failed).
        self.asking: list[Callable[[str, tuple[str, str, str]], None]] = []

    async def request(self, msg_type: str, content: dict[str, Any],
                      address: tuple[str, str, str], *, header: dict[str, Any] | None = None,
                      client: str | None = None, timeout: float = 10.0,
                      bulk: bool = False) -> Message:
        self.asked.append((msg_type, content, address))
        if bulk:
            self.bulk.append(msg_type)
        self.on_ask()
        try:
            answer = self.answers.get(msg_type, {"ok": False, "http_status": 400,
                                                 "error": f"not scripted: {msg_type}"})
            if callable(answer):
                answer = answer(content, address)
            if isinstance(answer, Exception):
                raise answer
            reply = self.session.msg(mt.REQUEST_ACCEPTED, answer)
            reply["buffers"] = answer.pop("_buffers", [])
            return reply
        finally:
            for hook in self.asking:
                hook(msg_type, address)

    def publish(self, msg: Message) -> None:
        for listener in list(self.listeners):
            listener(msg)

    def listen(self, worksheet: tuple[str, str] | None, listener: Listener) -> None:
        self.keyed.setdefault(worksheet, set()).add(listener)

    def unlisten(self, worksheet: tuple[str, str] | None, listener: Listener) -> None:
        self.keyed.get(worksheet, set()).discard(listener)


def document(status: str = "done", output: dict[str, Any] | None = None,
             seq: int = 3) -> dict[str, Any]:
    return {"ok": True, "document": {"cell_id": "c1", "status": status, "input": "1",
                                     "seq": seq, "output": output or {}, "reset": False}}


CELL = "/home/ann/ws/c1"


class HandlerTest(AsyncHTTPTestCase):
    link: FakeLink

    def get_app(self) -> tornado.web.Application:
        self.link = FakeLink()
        return make_app(self.link, max_input=100)  # type: ignore[arg-type]

    def post_json(self, path: str, body: Any, **kwargs: Any) -> Any:
        return self.fetch(path, method="POST", body=json.dumps(body),
                          headers={"Content-Type": "application/json"}, **kwargs)

    def test_evaluate_asks_the_broker_and_answers_202_with_its_msg_id(self) -> None:
        self.link.answers[mt.EXECUTE_REQUEST] = {"ok": True, "status": "needs_work",
                                                 "msg_id": "m1", "cell_id": "c1"}
        response = self.post_json(f"{CELL}/evaluate", {"input": "print(2)"})
        assert response.code == 202
        assert json.loads(response.body) == {"cell_id": "c1", "status": "needs_work",
                                             "msg_id": "m1"}
        [(msg_type, content, address)] = self.link.asked
        assert (msg_type, content["code"], address) == (mt.EXECUTE_REQUEST, "print(2)",
                                                        ("ann", "ws", "c1"))

    def test_evaluate_takes_a_form_and_no_input_means_the_stored_input(self) -> None:
        self.link.answers[mt.EXECUTE_REQUEST] = {"ok": True, "status": "needs_work",
                                                 "msg_id": "m1"}
        assert self.fetch(f"{CELL}/evaluate", method="POST", body="input=1%2B1").code == 202
        assert self.fetch(f"{CELL}/evaluate", method="POST", body="").code == 202
        assert [c.get("code") for _, c, _ in self.link.asked] == ["1+1", None]

    def test_input_over_the_limit_is_413_and_never_reaches_the_broker(self) -> None:
        response = self.post_json(f"{CELL}/evaluate", {"input": "x" * 101})
        assert response.code == 413
        assert json.loads(response.body) == {"error": "input is over the limit of 100 bytes"}
        assert self.link.asked == []

    def test_a_broker_refusal_keeps_its_status_and_retry_after(self) -> None:
        self.link.answers[mt.EXECUTE_REQUEST] = {"ok": False, "http_status": 429,
                                                 "retry_after": 7, "error": "quota"}
        response = self.post_json(f"{CELL}/evaluate", {"input": "1"})
        assert (response.code, response.headers.get("Retry-After")) == (429, "7")
        assert json.loads(response.body) == {"error": "quota"}

    def test_no_broker_is_503_with_retry_after(self) -> None:
        self.link.answers[mt.EXECUTE_REQUEST] = BrokerUnavailable("the broker is not reachable")
        response = self.post_json(f"{CELL}/evaluate", {"input": "1"})
        assert (response.code, response.headers.get("Retry-After")) == (503, "5")
        assert json.loads(response.body) == {"error": "the broker is not reachable; retry in 5 s"}

    def test_a_name_over_the_limit_is_400_naming_the_part(self) -> None:
        response = self.post_json(f"/home/ann/{'w' * 201}/c1/evaluate", {"input": "1"})
        assert response.code == 400
        assert "the worksheet is 201 characters long" in json.loads(response.body)["error"]
        assert self.link.asked == []

    def test_update_passes_since_and_sends_the_brokers_document(self) -> None:
        """The broker gives file blocks their URLs (broker/updates.py, which also encodes
        big documents itself); the gateway asks with ``big: false`` (a big document is
        withheld until it is the answer) and sends the document as it came."""
        output = {"file_0": {"type": "file", "name": "a b.txt", "seq": 4,
                             "url": f"{CELL}/files/4/a%20b.txt"}}
        self.link.answers[mt.CELL_UPDATE_REQUEST] = document(output=output)
        response = self.fetch(f"{CELL}/update?since=2")
        assert response.code == 200
        assert json.loads(response.body)["output"] == output
        assert self.link.asked == [(mt.CELL_UPDATE_REQUEST, {"since": 2, "big": False},
                                    ("ann", "ws", "c1"))]

    def test_update_refuses_a_bad_since_or_until(self) -> None:
        for query in ("since=-1", "since=x", "wait=nan", "until=later"):
            assert self.fetch(f"{CELL}/update?{query}").code == 400, query
        assert self.link.asked == []

    def test_a_long_poll_wakes_on_output_for_its_cell_and_answers_at_once(self) -> None:
        """With wait=30, an answer with nothing new waits for the cell's next output on the
        feed; that output wakes it, it asks the broker again and answers, long before 30 s."""
        published: list[Message] = []
        self.link.answers[mt.CELL_UPDATE_REQUEST] = lambda content, address: document(
            "working", {"stdout_0": {"type": "text", "content": "2"}} if published else {})
        asked = asyncio.Event()
        self.link.on_ask = asked.set

        async def feed() -> None:
            await asked.wait()  # the poll asked once and found nothing new
            published.append(self.link.session.msg(mt.STREAM, {"text": "2"}, metadata={
                "cellbus": {"user": "ann", "worksheet": "ws", "cell_id": "c1"}}))
            self.link.publish(published[-1])

        started = self.io_loop.time()
        task = self.io_loop.asyncio_loop.create_task(feed())  # type: ignore[attr-defined]
        response = self.fetch(f"{CELL}/update?wait=30", request_timeout=25)
        assert task.done()
        assert response.code == 200
        assert json.loads(response.body)["output"] == {
            "stdout_0": {"type": "text", "content": "2"}}
        assert len(self.link.asked) == 2
        assert self.io_loop.time() - started < 20

    def test_interact_sends_only_the_fields_of_an_interact_request(self) -> None:
        self.link.answers[mt.INTERACT_REQUEST] = {"ok": True, "status": "needs_work",
                                                  "msg_id": "m2"}
        response = self.post_json(f"{CELL}/interact", {"interact_id": "i1", "values": {"n": 1},
                                                       "state": 2, "code": "import os"})
        assert response.code == 202
        assert self.link.asked[0][1] == {"interact_id": "i1", "values": {"n": 1}, "state": 2}

    def test_a_file_is_served_inert_with_its_mime(self) -> None:
        self.link.answers[mt.FILE_REQUEST] = {"ok": True, "mime": "text/html", "size": 3,
                                              "_buffers": [b"<b>"]}
        response = self.fetch(f"{CELL}/files/4/a.html")
        assert response.code == 200 and response.body == b"<b>"
        assert response.headers["Content-Type"] == "text/html"
        assert response.headers["Content-Security-Policy"] == "sandbox"
        assert self.link.asked == [(mt.FILE_REQUEST, {"seq": 4, "name": "a.html",
                                                      "big": False}, ("ann", "ws", "c1"))]

    def test_a_notebook_download_comes_on_the_connection_for_big_answers(self) -> None:
        """A notebook may be megabytes: on the link's one DEALER, another user's small
        answers queued behind it (bench/read_hammer.py --mode notebook)."""
        body = b'{"cells": []}'
        self.link.answers[mt.WORKSHEET_NOTEBOOK_REQUEST] = lambda content, address: {
            "ok": True, "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(),
            "_buffers": [body]}
        response = self.fetch("/home/ann/ws/notebook.ipynb")
        assert (response.code, response.body) == (200, body)
        assert self.link.bulk == [mt.WORKSHEET_NOTEBOOK_REQUEST]

    def test_interrupt_and_restart_answer_as_the_broker_says(self) -> None:
        self.link.answers[mt.INTERRUPT_REQUEST] = {"ok": False, "http_status": 409,
                                                   "error": "cell c1 is not running"}
        self.link.answers[mt.RESTART_REQUEST] = {"ok": True, "closed": "s1"}
        response = self.fetch(f"{CELL}/interrupt", method="POST", body="")
        assert (response.code, json.loads(response.body)) == (
            409, {"error": "cell c1 is not running"})
        response = self.fetch(f"{CELL}/restart", method="POST", body="")
        assert (response.code, json.loads(response.body)) == (
            202, {"cell_id": "c1", "status": "restarted", "closed": "s1"})

    def test_an_unknown_route_is_a_json_404(self) -> None:
        response = self.fetch("/nothing/here")
        assert response.code == 404
        assert json.loads(response.body) == {"error": "no route /nothing/here"}


class PacingTest(AsyncHTTPTestCase):
    """A long-poll's answer goes out a window at a time (gateway/outbox.py write_paced): a
    client that reads gets it whole; one that reads nothing has its connection closed after
    ``client_stall`` seconds, holding no more of the answer than the kernel took."""

    STALL = 0.5

    def get_app(self) -> tornado.web.Application:
        self.link = FakeLink()
        return make_app(self.link, max_input=100, client_stall=self.STALL)  # type: ignore[arg-type]

    def big_document(self, size: int) -> None:
        self.link.answers[mt.CELL_UPDATE_REQUEST] = lambda content, address: document(
            output={"stdout_0": {"type": "text", "content": "x" * size}})

    def test_a_client_that_reads_gets_the_whole_answer(self) -> None:
        self.big_document(20 * WINDOW)
        response = self.fetch(f"{CELL}/update")
        assert response.code == 200
        assert len(json.loads(response.body)["output"]["stdout_0"]["content"]) == 20 * WINDOW

    @gen_test(timeout=30)
    async def test_a_client_that_reads_nothing_is_dropped_after_the_stall(self) -> None:
        self.big_document(64 * 1024 * 1024)  # far more than loopback's socket buffers
        dropped = asyncio.Event()

        class Seen(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "dropping a long-poll" in record.getMessage():
                    dropped.set()

        seen = Seen()
        gateway_log = logging.getLogger("cellbus.gateway")
        level = gateway_log.level
        gateway_log.addHandler(seen)
        gateway_log.setLevel(logging.INFO)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.get_http_port())
        try:
            writer.write(f"GET {CELL}/update HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            started = asyncio.get_running_loop().time()
            await asyncio.wait_for(dropped.wait(), 20)  # without reading a byte
            assert asyncio.get_running_loop().time() - started >= self.STALL
            got = await asyncio.wait_for(reader.read(), 20)  # what the kernel took, then EOF
        finally:
            gateway_log.removeHandler(seen)
            gateway_log.setLevel(level)
            writer.close()
            await writer.wait_closed()
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert 0 < len(body) < 64 * 1024 * 1024


class BigReadsTest(AsyncHTTPTestCase):
    """A big ``/update`` answer (broker/updates.py: withheld while the poll waits, then asked
    for with ``big``) is fetched from the broker one at a time (gateway/bigreads.py): with
    one on its way and four waiting, another is refused with 503 and Retry-After, at once,
    and reaches the broker no further; a small answer is not held up at all."""

    def get_app(self) -> tornado.web.Application:
        self.link = FakeLink()
        return make_app(self.link, max_input=100)  # type: ignore[arg-type]

    @gen_test(timeout=30)
    async def test_big_reads_past_the_queue_get_503_and_small_ones_answer(self) -> None:
        release = asyncio.Event()
        body = json.dumps({"status": "done", "output": {}}).encode()
        asked = self.link.request

        async def request(msg_type: str, content: dict[str, Any], address: Any,
                          **kwargs: Any) -> Message:
            if address[2] == "big" and content.get("big"):
                await release.wait()  # the first big answer is on its way until released
                reply = self.link.session.msg(mt.REQUEST_ACCEPTED, {
                    "ok": True, "status": "done", "changed": True, "bytes": len(body),
                    "sha256": hashlib.sha256(body).hexdigest()})
                reply["buffers"] = [body]
                return reply
            return await asked(msg_type, content, address, **kwargs)

        self.link.request = request  # type: ignore[method-assign]
        self.link.answers[mt.CELL_UPDATE_REQUEST] = lambda content, address: (
            {"ok": True, "status": "done", "changed": True, "withheld": True}
            if address[2] == "big" else document())
        url = self.get_url("/home/ann/ws/big/update")
        waiting = [asyncio.ensure_future(self.http_client.fetch(url, raise_error=False))
                   for _ in range(5)]
        while self._app.settings["big_reads"].waiting < 5:
            await asyncio.sleep(0.01)  # one fetching, four waiting
        refused = await self.http_client.fetch(url, raise_error=False)
        assert (refused.code, refused.headers.get("Retry-After")) == (503, "2"), refused.body
        small = await self.http_client.fetch(self.get_url(f"{CELL}/update"), raise_error=False)
        assert small.code == 200 and json.loads(small.body)["status"] == "done"
        release.set()
        answers = await asyncio.gather(*waiting)
        assert [(a.code, a.body) for a in answers] == [(200, body)] * 5


    def test_a_kept_document_is_sent_again_without_asking_the_broker(self) -> None:
        """A finished cell's big document, whose JSON the broker keeps (it names its
        SHA-256 when it withholds it), is fetched once and then sent from this gateway's
        copy: each re-read of a 7 MB cell had the broker send it whole again."""
        body = json.dumps({"status": "done", "output": {"stdout_0": {}}}).encode()
        digest = hashlib.sha256(body).hexdigest()
        fetched = []

        def answer(content: dict[str, Any], address: Any) -> dict[str, Any]:
            said = {"ok": True, "status": "done", "changed": True}
            if not content.get("big"):
                return {**said, "withheld": True, **({"sha256": digest} if fetched else {})}
            fetched.append(1)
            return {**said, "bytes": len(body), "sha256": digest, "kept": True,
                    "_buffers": [body]}

        self.link.answers[mt.CELL_UPDATE_REQUEST] = answer
        got = [self.fetch(f"{CELL}/update?since=0") for _ in range(3)]
        assert [(g.code, g.body) for g in got] == [(200, body)] * 3
        assert self.link.bulk == [mt.CELL_UPDATE_REQUEST] and len(fetched) == 1

class PageTurnTest(AsyncHTTPTestCase):
    """Pages of a worksheet's feed (replays of WebSockets and Jupyter channels, and
    ``/session``) are taken from the broker one at a time (gateway/bigreads.py): ten clients
    replaying a big worksheet again and again had ten pages decoded and encoded on the loop
    ahead of another user's poll."""

    def get_app(self) -> tornado.web.Application:
        self.link = FakeLink()
        return make_app(self.link, max_input=100)  # type: ignore[arg-type]

    @gen_test(timeout=30)
    async def test_one_page_of_a_feed_is_asked_for_at_a_time(self) -> None:
        release = asyncio.Event()
        asked = self.link.request
        pages = flying = most = 0

        async def request(msg_type: str, content: dict[str, Any], address: Any,
                          **kwargs: Any) -> Message:
            nonlocal pages, flying, most
            if msg_type != mt.SESSION_REPLAY_REQUEST:
                return await asked(msg_type, content, address, **kwargs)
            pages, flying = pages + 1, flying + 1
            most = max(most, flying)
            try:
                await release.wait()  # the page is on its way until released
                return self.link.session.msg(mt.REQUEST_ACCEPTED, {
                    "ok": True, "session": "s1", "messages": [], "more": False})
            finally:
                flying -= 1

        self.link.request = request  # type: ignore[method-assign]
        self.link.answers[mt.CELL_UPDATE_REQUEST] = document()
        url = self.get_url("/home/ann/ws/session?since=0")
        reads = [asyncio.ensure_future(self.http_client.fetch(url, raise_error=False))
                 for _ in range(2)]
        while self._app.settings["watch"].polls < 2:  # both reads under way
            await asyncio.sleep(0.01)
        small = await self.http_client.fetch(self.get_url(f"{CELL}/update"))
        assert small.code == 200  # a small read is not held up by the turn
        assert (pages, most) == (1, 1)  # the second read waits for its turn
        release.set()
        answers = await asyncio.gather(*reads)
        assert [a.code for a in answers] == [200, 200] and (pages, most) == (2, 1)

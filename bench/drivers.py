"""One client for both systems: a live session over a WebSocket, executing code and timing it.

Both speak Jupyter messages in JSON over a WebSocket, so one class sends ``execute_request``
and reads until the request's ``execute_reply`` and ``status: idle`` have both arrived,
noting when the first ``stream`` output and the reply came. What differs is small and lives
in two subclasses: how a session is opened and closed, and the address on each request
(cellbus: ``subscribe_request`` and ``metadata.cellbus``; the Kernel Gateway: ``POST
/api/kernels`` and a socket per kernel). The client sets TCP_NODELAY on every socket it opens.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

TIMEOUT = 60.0
clock = time.perf_counter


def header(msg_type: str, session: str) -> dict[str, str]:
    return {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": session,
            "username": "bench", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "version": "5.4"}


def execute_content(code: str) -> dict[str, Any]:
    return {"code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True}


def nodelay(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


@dataclass
class Execution:
    """Times in seconds after the request was sent; ``seqs`` as cellbus numbered them."""

    first_output: float | None = None
    reply: float | None = None
    idle: float | None = None
    status: str | None = None
    text: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    messages: int = 0
    #: interact_ids of the @interact blocks the code showed (cellbus).
    interacts: list[str] = field(default_factory=list)
    #: msg_type -> (its header date, when it arrived), wall-clock seconds since the request
    #: was sent. The date is stamped by the cellbus device (it signs for the worker) or by
    #: ipykernel: so the legs up to and back from that point can be told apart.
    stamped: dict[str, tuple[float, float]] = field(default_factory=dict)

    def legs(self) -> dict[str, float] | None:
        """Request → busy stamped, busy → reply stamped, reply stamped → reply received."""
        busy, reply = self.stamped.get("status"), self.stamped.get("execute_reply")
        if busy is None or reply is None:
            return None
        return {"request → busy stamped": busy[0], "busy → reply stamped": reply[0] - busy[0],
                "reply stamped → received": reply[1] - reply[0]}

    @property
    def round_trip(self) -> float:
        """Until both the reply and the output are in (the Kernel Gateway sends them on two
        channels, in either order)."""
        assert self.reply is not None
        return max(self.reply, self.first_output or 0.0)

    @property
    def output(self) -> str:
        return "".join(self.text)


class WsSession:
    """A live session: one WebSocket, one execution at a time."""

    system = "?"

    def __init__(self, port: int) -> None:
        self.port = port
        self.ws: WebSocketClientConnection | None = None
        self.client_session = uuid.uuid4().hex
        self.opened: dict[str, float] = {}  # what opening took: step -> seconds
        #: msg_id of a request sent while opening whose answer nobody awaited yet.
        self.unanswered: str | None = None
        #: What the time from opened to the first output covers.
        self.first_step = "execute → first output"

    async def connect(self, url: str) -> None:
        self.ws = await websocket_connect(HTTPRequest(url, connect_timeout=TIMEOUT,
                                                      request_timeout=TIMEOUT))
        nodelay(self.ws.protocol.stream.socket)  # type: ignore[union-attr]

    def request(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        return {"header": header(msg_type, self.client_session), "parent_header": {},
                "metadata": {}, "content": content, "channel": "shell", "buffers": []}

    async def read(self, deadline: float) -> dict[str, Any]:
        assert self.ws is not None
        raw = await asyncio.wait_for(self.ws.read_message(), max(0.001, deadline - clock()))
        if raw is None:
            raise ConnectionError(f"{self.system}: the WebSocket closed")
        return json.loads(raw)

    async def execute(self, code: str, timeout: float = TIMEOUT) -> Execution:
        return await self.run("execute_request", execute_content(code), code, timeout)

    async def run(self, msg_type: str, content: dict[str, Any], what: str,
                  timeout: float = TIMEOUT) -> Execution:
        """Send one request; collect its output until its reply and idle status are in."""
        assert self.ws is not None
        msg = self.request(msg_type, content)
        msg_id = msg["header"]["msg_id"]
        started, wall = clock(), time.time()
        deadline = started + timeout
        await self.ws.write_message(json.dumps(msg))
        got = Execution()
        while got.reply is None or got.idle is None:
            try:
                m = await self.read(deadline)
            except asyncio.TimeoutError:
                raise TimeoutError(
                    f"{self.system}: no reply and idle status in {timeout:.0f} s; got "
                    f"{got.messages} messages of the request, seqs up to "
                    f"{max(got.seqs, default=None)}") from None
            parent = (m.get("parent_header") or {}).get("msg_id")
            if self.unanswered is not None and parent == self.unanswered:
                if not (m.get("content") or {}).get("ok"):
                    raise RuntimeError(f"{self.system} refused {m.get('msg_type')}: {m['content']}")
                self.unanswered = None
            if parent != msg_id:
                continue
            now = clock() - started
            kind, content = m.get("msg_type"), m.get("content") or {}
            if content.get("ok") is False:
                raise RuntimeError(f"{self.system} refused the request: {content}")
            seq = ((m.get("metadata") or {}).get("cellbus") or {}).get("seq")
            if seq is not None:
                got.seqs.append(seq)
            got.messages += 1
            if kind not in got.stamped:
                try:
                    date = datetime.fromisoformat(m["header"]["date"]).timestamp()
                    got.stamped[kind] = (date - wall, time.time() - wall)
                except (KeyError, TypeError, ValueError):
                    pass
            if kind == "stream":
                got.first_output = now if got.first_output is None else got.first_output
                got.text.append(content.get("text", ""))
            elif kind in ("execute_reply", "interact_reply"):
                got.reply, got.status = now, content.get("status")
            elif kind == "interact_start":
                got.interacts.append(content.get("interact_id", ""))
            elif kind == "status" and content.get("execution_state") == "idle":
                got.idle = now
        if got.status != "ok":
            raise RuntimeError(f"{self.system}: {what!r} ended with {got.status}: {got.output}")
        return got

    async def open(self, *, pipelined: bool = False) -> None:
        """Open the session. ``pipelined``: as the system's own browser client does on a new
        page, send what opening needs without waiting for its answer where the protocol
        allows (the first request's run checks that answer)."""
        raise NotImplementedError

    async def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.ws = None


class CellbusSession(WsSession):
    """A worksheet of cellbus: ``WS /ws``, ``subscribe_request``, then ``execute_request``
    with ``metadata.cellbus = {user, worksheet, cell_id}``."""

    system = "cellbus"
    user = "bench"

    def __init__(self, port: int, worksheet: str) -> None:
        super().__init__(port)
        self.worksheet = worksheet

    def request(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        msg = super().request(msg_type, content)
        msg["metadata"] = {"cellbus": {"user": self.user, "worksheet": self.worksheet,
                                       "cell_id": "1"}}
        return msg

    async def open(self, *, pipelined: bool = False) -> None:
        """Connect and subscribe. ``pipelined``: what cellbus.js does on a new page, the
        subscription and the first request sent back to back (the subscription's replay
        and the request run side by side; the request's output follows the replay)."""
        t0 = clock()
        await self.connect(f"ws://127.0.0.1:{self.port}/ws")
        t1 = clock()
        assert self.ws is not None
        msg = self.request("subscribe_request", {"user": self.user, "worksheet": self.worksheet,
                                                 "since": 0})
        await self.ws.write_message(json.dumps(msg))
        if pipelined:
            self.unanswered = msg["header"]["msg_id"]
            self.opened = {"connect": t1 - t0}
            self.first_step = "subscribe + execute → first output"
            return
        deadline = clock() + TIMEOUT
        while True:
            m = await self.read(deadline)
            if (m.get("parent_header") or {}).get("msg_id") == msg["header"]["msg_id"]:
                if not m["content"].get("ok"):
                    raise RuntimeError(f"cellbus refused the subscription: {m['content']}")
                break
        self.opened = {"connect": t1 - t0, "subscribe": clock() - t1}

    async def close(self) -> None:
        """End the worksheet's session (its worker exits), then the socket."""
        if self.ws is not None:
            msg = self.request("restart_request", {})
            try:
                await self.ws.write_message(json.dumps(msg))
                deadline = clock() + TIMEOUT
                while (await self.read(deadline)).get("parent_header", {}).get(
                        "msg_id") != msg["header"]["msg_id"]:
                    pass
            finally:
                await super().close()


class KernelGatewaySession(WsSession):
    """A kernel of Jupyter Kernel Gateway: ``POST /api/kernels``, then
    ``WS /api/kernels/ID/channels``; ``DELETE /api/kernels/ID`` ends it."""

    system = "jkg"

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.kernel_id: str | None = None

    async def open(self, *, pipelined: bool = False) -> None:
        t0 = clock()  # nothing to pipeline: the socket's URL names the kernel the POST made
        r = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{self.port}/api/kernels",
                                          method="POST", body=json.dumps({"name": "python3"}),
                                          request_timeout=TIMEOUT)
        self.kernel_id = json.loads(r.body)["id"]
        t1 = clock()
        await self.connect(f"ws://127.0.0.1:{self.port}/api/kernels/{self.kernel_id}/channels")
        self.opened = {"POST kernel": t1 - t0, "connect": clock() - t1}

    async def close(self) -> None:
        await super().close()
        if self.kernel_id is not None:
            kernel_id, self.kernel_id = self.kernel_id, None
            await AsyncHTTPClient().fetch(f"http://127.0.0.1:{self.port}/api/kernels/{kernel_id}",
                                          method="DELETE", request_timeout=TIMEOUT)


class CellbusHttp:
    """cellbus's HTTP API on one keep-alive connection: ``POST …/evaluate`` then ``GET
    …/update?since=&wait=`` until the cell is done. Blocking; call it in a thread."""

    def __init__(self, port: int, worksheet: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        self.conn.connect()
        nodelay(self.conn.sock)
        self.base = f"/home/bench/{worksheet}/1"
        self.seq = 0

    def _call(self, method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.status >= 300:
            raise RuntimeError(f"cellbus HTTP {method} {path}: {r.status} {data[:200]!r}")
        return json.loads(data)

    def execute(self, code: str) -> tuple[float, str]:
        """Seconds from the POST to the update that says done; and the output."""
        started = clock()
        msg_id = self._call("POST", f"{self.base}/evaluate",
                            json.dumps({"input": code}).encode())["msg_id"]
        blocks: dict[str, dict[str, Any]] = {}
        while clock() - started < TIMEOUT:
            doc = self._call("GET", f"{self.base}/update?since={self.seq}&wait=30")
            self.seq = max(self.seq, doc.get("seq") or 0)
            if doc.get("request") != msg_id:
                continue
            if doc.get("reset"):
                blocks.clear()
            blocks.update(doc.get("output") or {})
            if doc["status"] in ("done", "error"):
                elapsed = clock() - started
                text = "".join(b.get("content", "") for b in sorted(
                    blocks.values(), key=lambda b: b.get("order", 0)) if b.get("type") == "text")
                return elapsed, text
        raise TimeoutError("cellbus HTTP: no answer")

    def close(self) -> None:
        self.conn.close()

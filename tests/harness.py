"""Test harness: nodes started as real processes, and a signed bus client.

Everything here talks over real sockets; nothing is mocked. Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from tornado.websocket import websocket_connect

from ports import Ports
from protocol import Session
from protocol.curve import ClientKeys, make_certificate
from protocol.msgtypes import RECORDS
from protocol.records import unbundle
from protocol.wire import Message

ROOT = Path(__file__).resolve().parent.parent
#: The launcher ``bin/cellbus`` runs, started with the interpreter under test (``bin/cellbus``
#: would first put the project into a ``.venv`` of its own). Run it with :func:`node_env`.
CELLBUS = [sys.executable, "-m", "cellbus"]


def node_env(env: dict[str, str] | None = None, *, base: dict[str, str] | None = None
             ) -> dict[str, str]:
    """``base`` (default ``os.environ``) with ``env`` on top and this checkout first on
    ``PYTHONPATH``: every process a node starts imports this tree's code, as the tests do,
    also where the project is installed from elsewhere or not editable (the device's template
    runs ``python -P``, which leaves the working directory off ``sys.path``)."""
    # Devices offer only the built-in kernel unless a test names others (--kernels): by
    # default they would start every installed Jupyter kernel's pool.
    merged = {"CELLBUS_KERNELS": "python", **(os.environ if base is None else base),
              **(env or {})}
    merged["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), merged.get("PYTHONPATH")]))
    return merged


def ipc_endpoint(name: str = "bus") -> str:
    """An ipc:// endpoint in a fresh private folder with a short path (ipc paths are limited
    to about 100 bytes, more than pytest's folders leave), removed when the test process
    ends (a run left some 200 of them in /tmp)."""
    import atexit
    import shutil
    import tempfile
    folder = tempfile.mkdtemp(prefix="cb-")
    atexit.register(shutil.rmtree, folder, True)
    return f"ipc://{folder}/{name}"


#: This run's ports (tests/ports.py: reserved against other test runs on the machine).
_PORTS = Ports()


def free_port() -> int:
    """A port on 127.0.0.1 nothing is bound to now, outside the ephemeral range, given to no
    other test run on this machine, and not given before in this run."""
    return _PORTS.take()


def free_ports(n: int) -> int:
    """The first of ``n`` consecutive ports as :func:`free_port` gives one."""
    return _PORTS.take_run(n)


#: The order nodes stop in at a test's end, as ``bin/cellbus up`` stops them: a device stopped
#: while its broker runs gets the receipts for its output at once, instead of waiting for a
#: broker that is gone.
STOP_ORDER = {"gateway": 0, "device": 1, "broker": 2}


def stop_nodes(nodes: list[NodeProcess]) -> None:
    """Stop (then kill) ``nodes``: gateways, devices, then brokers (:data:`STOP_ORDER`), the
    last started first within each, whatever happens."""
    for node in sorted(reversed(nodes), key=lambda n: STOP_ORDER.get(n.command, 0)):
        node.stop(timeout=10)
        node.kill_group()


class NodeProcess:
    """A node started with the ``cellbus`` launcher as an operator would (:data:`CELLBUS`); its
    log is kept and searchable."""

    def __init__(self, *argv: str, env: dict[str, str] | None = None,
                 wrap: list[str] | None = None) -> None:
        self.argv = [*(wrap or []), *CELLBUS, *argv]
        self.command = argv[0] if argv else ""  # broker, device, gateway, up...
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=node_env(env), cwd=ROOT,
            start_new_session=True)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def log(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_log(self, pattern: str, timeout: float = 15.0, *,
                     nth: int = 1) -> re.Match[str]:
        """Block until ``nth`` log lines match ``pattern`` (one by default) and return the
        ``nth``; fail with the log if they never do."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = 0
                for line in self.lines:
                    if (m := rx.search(line)) and (found := found + 1) == nth:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no log line matching {pattern!r}:\n{self.log}")
                self._changed.wait(min(left, 0.5))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None and not self._reader.is_alive():
            self.proc.stdout.close()
        return self.proc.returncode

    def kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class BusClient:
    """A signed DEALER standing in for the broker (or a Jupyter client, with packer="json")."""

    def __init__(self, key: bytes, *, bind: str | None = None, connect: str | None = None,
                 packer: str = "msgpack", keys: ClientKeys | None = None) -> None:
        self.session = Session(key, packer=packer)  # type: ignore[arg-type]
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        if keys is not None:  # a CURVE client of a chain's broker
            keys.connect_with(self.sock)
        self.endpoint = bind or connect or ""
        if bind:
            self.sock.bind(bind)
        if connect:
            self.sock.connect(connect)
        self.inbox: list[tuple[float, Message]] = []
        self._opened: list[Message] = []  # records of a bundle not yet returned by recv
        #: Messages received so far, by the msg_id of the request they answer.
        self.about: dict[str, list[Message]] = {}

    def _keep(self, msg: Message) -> Message:
        self.inbox.append((time.monotonic(), msg))
        parent = msg["parent_header"].get("msg_id")
        if isinstance(parent, str):
            self.about.setdefault(parent, []).append(msg)
        return msg

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()

    def request(self, msg_type: str, content: dict[str, Any], session_id: str | None,
                **facts: Any) -> Message:
        cellbus = {"session": session_id, **facts} if session_id is not None else facts
        msg = self.session.msg(msg_type, content, metadata={"cellbus": cellbus})
        self.sock.send_multipart(self.session.serialize(msg))
        return msg

    def execute(self, code: str, session_id: str | None, **facts: Any) -> Message:
        return self.request("execute_request", {"code": code, "silent": False,
                                                "store_history": True, "user_expressions": {},
                                                "allow_stdin": True, "stop_on_error": True},
                            session_id, **facts)

    def recv(self, timeout: float = 10.0) -> Message | None:
        """The next message (with its arrival time kept in ``inbox``), or None on timeout.
        A device's ``records`` bundle is opened as the broker opens it: its records come one
        by one, in order."""
        if self._opened:
            return self._keep(self._opened.pop(0))
        if not self.sock.poll(int(timeout * 1000)):
            return None
        _, msg = self.session.deserialize(self.sock.recv_multipart())
        if msg["msg_type"] == RECORDS:
            def refuse(e: Exception) -> None:
                raise e
            self._opened = list(unbundle(self.session, msg, refuse))
            return self.recv(timeout) if self._opened else None
        return self._keep(msg)

    def wait_for(self, predicate: Any, timeout: float = 15.0) -> Message:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv(left)
            if msg is not None and predicate(msg):
                return msg
        raise AssertionError(f"no matching message within {timeout} s; got "
                             f"{[m['msg_type'] for _, m in self.inbox[-20:]]}")

    def replies_to(self, request: Message, timeout: float = 20.0) -> list[Message]:
        """Every message about ``request`` up to its reply and the idle status after it,
        including those received while waiting for something else."""
        def complete(msgs: list[Message]) -> int:
            """How many of ``msgs`` make the whole answer; 0 while it is not complete."""
            replied = False
            for n, msg in enumerate(msgs, 1):
                replied = replied or msg["msg_type"].endswith("_reply")
                if replied and (not request["msg_type"] == "execute_request" or (
                        msg["msg_type"] == "status"
                        and msg["content"]["execution_state"] == "idle")):
                    return n
            return 0

        out = self.about.setdefault(request["msg_id"], [])
        deadline = time.monotonic() + timeout
        while not (n := complete(out)):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.recv(left)
        else:
            return out[:n]
        raise AssertionError(f"no complete reply to {request['msg_type']} within {timeout} s: "
                             f"{[m['msg_type'] for m in out]}")

    def run(self, code: str, session_id: str, timeout: float = 20.0) -> list[Message]:
        return self.replies_to(self.execute(code, session_id), timeout)


def worker_pid(device: NodeProcess, session: str, nth: int | None = None) -> int:
    """The host pid of the session's worker (or of its sandbox's init, whose exit ends every
    process of the session), from the device's log: code inside a sandbox sees its own
    PID namespace, where ``os.getpid()`` is small and means nothing on the host. Its latest
    worker, or its ``nth`` (waited for: the device's log may come after the worker's output)."""
    pattern = rf"started worker (\d+) for session {re.escape(session)} "
    if nth is not None:
        return int(device.wait_for_log(pattern, nth=nth).group(1))
    device.wait_for_log(pattern)
    return int(re.findall(pattern, device.log)[-1])  # its latest worker


def stdout_of(msgs: list[Message], name: str = "stdout") -> str:
    return "".join(m["content"]["text"] for m in msgs
                   if m["msg_type"] == "stream" and m["content"]["name"] == name)


def of_type(msgs: list[Message], msg_type: str) -> list[Message]:
    return [m for m in msgs if m["msg_type"] == msg_type]


class Chain:
    """Broker, devices and gateways as separate processes on free loopback ports, over CURVE
    (each node its own certificate, made in a key folder beside the key file)."""

    def __init__(self, key_file: Path, store: str, nodes: list[NodeProcess]) -> None:
        self.key_file, self.store, self.nodes = str(key_file), store, nodes
        self.keys_dir = Path(key_file).parent / "curve"
        if not (self.keys_dir / "broker.key_secret").exists():
            make_certificate(self.keys_dir, "broker", "broker")
        self.gateway_ep = f"tcp://127.0.0.1:{free_port()}"
        self.device_ep = f"tcp://127.0.0.1:{free_port()}"
        self.publish_ep = f"tcp://127.0.0.1:{free_port()}"
        self.port = free_port()
        self.broker: NodeProcess | None = None
        self.gateway: NodeProcess | None = None
        self.devices: list[NodeProcess] = []

    def cert_options(self, name: str, role: str) -> list[str]:
        """A client node's CURVE options, its certificate made if it has none yet."""
        secret = self.keys_dir / f"{name}.key_secret"
        if not secret.exists():
            make_certificate(self.keys_dir, name, role)
        return ["--curve-key", str(secret), "--broker-key", str(self.keys_dir / "broker.key")]

    def client_keys(self, name: str, role: str) -> ClientKeys:
        """CURVE keys for a test's own socket on the broker, as a node of ``role``."""
        options = self.cert_options(name, role)
        return ClientKeys(options[1], options[3])

    def _start(self, *argv: str, wrap: list[str] | None = None) -> NodeProcess:
        node = NodeProcess(*argv, "--key-file", self.key_file, wrap=wrap)
        self.nodes.append(node)
        return node

    def start_broker(self, *options: str, wrap: list[str] | None = None) -> NodeProcess:
        self.broker = self._start("broker", *options, "--store", self.store,
                                  "--curve-dir", str(self.keys_dir),
                                  "--gateway-bind", self.gateway_ep,
                                  "--device-bind", self.device_ep,
                                  "--publish-bind", self.publish_ep, wrap=wrap)
        self.broker.wait_for_log(r"broker started")
        return self.broker

    def start_device(self, *options: str, name: str | None = None,
                     wrap: list[str] | None = None) -> NodeProcess:
        name = name or f"device{len(self.devices)}"
        device = self._start("device", "--connect", self.device_ep, "--device-id", name,
                             *self.cert_options(name, "device"), *options, wrap=wrap)
        self.devices.append(device)
        if self.broker is not None:
            self.broker.wait_for_log(rf"device {name} registered")
        return device

    def start_gateway(self, *options: str, name: str = "gateway",
                      wrap: list[str] | None = None, linked: bool = True) -> NodeProcess:
        """Start the gateway; with ``linked`` (and a broker running), wait until its link to
        the broker is up. ``linked=False``: for a gateway the broker is to refuse.
        ``--client-requests`` is off unless a test gives it: its default (100/s a user with
        --auth token) is for browsers and scripts on the internet, and a test's bursts of
        requests from one client (24 saves at once, three times, and their reads) went past
        it when the suite ran fast; tests/test_flood_reads.py gives it."""
        limits = () if any(o.startswith("--client-requests") for o in options) else (
            "--client-requests", "0")
        self.gateway = self._start("gateway", "--port", str(self.port),
                                   "--broker", self.gateway_ep, "--subscribe", self.publish_ep,
                                   *self.cert_options(name, "gateway"), *limits, *options,
                                   wrap=wrap)
        self.gateway.wait_for_log(r"gateway listening on")
        if linked and self.broker is not None and self.broker.proc.poll() is None:
            wait_gateway_linked(self)  # else a first request may get 503 "not reachable"
        return self.gateway

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def http(self, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/json", timeout: float = 30, *,
             headers: dict[str, str] | None = None, port: int | None = None
             ) -> tuple[int, Any]:
        """(status, decoded JSON body) for one request (to ``port``, default the chain's
        gateway's, with ``headers`` too); errors are answers, not exceptions."""
        import json
        import urllib.error
        import urllib.request
        url = self.url(path) if port is None else f"http://127.0.0.1:{port}{path}"
        sent = {**({"Content-Type": content_type} if body else {}), **(headers or {})}
        req = urllib.request.Request(url, data=body, method=method, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw, status, ctype = resp.read(), resp.status, resp.headers.get("Content-Type")
        except urllib.error.HTTPError as e:
            raw, status, ctype = e.read(), e.code, e.headers.get("Content-Type")
            e.close()
        if ctype and ctype.startswith("application/json"):
            return status, json.loads(raw)
        return status, raw

    def evaluate(self, cell: str, code: str | None) -> tuple[int, Any]:
        import json
        body = json.dumps({} if code is None else {"input": code}).encode()
        return self.http("POST", f"/home/{cell}/evaluate", body)

    def update(self, cell: str, since: int = 0, wait: float = 0) -> tuple[int, Any]:
        return self.http("GET", f"/home/{cell}/update?since={since}&wait={wait}")

    def wait_done(self, cell: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, doc = self.update(cell, wait=5)
            if status == 200 and doc["status"] in ("done", "error"):
                return doc
        raise AssertionError(f"cell {cell} not finished within {timeout} s")


# -- capacity, restart and status (tests/test_capacity.py) -----------------------------------


def http_with_headers(chain: Chain, method: str, path: str, body: bytes | None = None,
                      timeout: float = 30) -> tuple[int, dict[str, str], Any]:
    """Like ``Chain.http`` with JSON bodies, but also returns the response headers."""
    import json
    import urllib.error
    import urllib.request
    req = urllib.request.Request(chain.url(path), data=body, method=method,
                                 headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status, headers = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as e:
        raw, status, headers = e.read(), e.code, dict(e.headers)
        e.close()
    return status, headers, json.loads(raw) if raw else None


def cellbus_status(*args: str, env: dict[str, str] | None = None, timeout: float = 30,
                   program: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``bin/cellbus status ARGS`` as an operator would (or ``program ARGS``, a status
    with a fault put in: tests/slow_status.py); output as text. One that does not end within
    ``timeout`` fails the test with the Python stacks it was in then."""
    command = program or [*CELLBUS, "status"]
    proc = subprocess.Popen([*command, *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=node_env({"PYTHONFAULTHANDLER": "1", **(env or {})}))
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # the fault handler writes every thread's stack
        stdout, stderr = proc.communicate()
        raise AssertionError(f"cellbus status {' '.join(args)} did not end within "
                             f"{timeout:g} s; its stacks:\n{stderr}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def chain_status(chain: Chain, *args: str) -> subprocess.CompletedProcess[str]:
    """``bin/cellbus status`` against ``chain``'s broker."""
    return cellbus_status("--broker", chain.gateway_ep, "--key-file", chain.key_file,
                          *chain.cert_options("status", "gateway"), *args)


class FakeDevice(BusClient):
    """A scripted device on a chain's broker: it registers, heartbeats every 0.5 s with the
    state a test sets, and answers requests however the test wants (a real device cannot be
    made to race on purpose). Like a real one, it reports the requests it holds."""

    def __init__(self, key: bytes, chain: Chain, name: str) -> None:
        super().__init__(key, keys=chain.client_keys(name, "device"))
        self.name = name
        self.sock.routing_id = name.encode()
        self.sock.connect(chain.device_ep)
        self.state: dict[str, Any] = {"capacity": 0, "load": 0, "sessions": []}
        self.held: list[str] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._beats = threading.Thread(target=self._beat, daemon=True)

    def close(self) -> None:
        self._stopping.set()
        if self._beats.is_alive():
            self._beats.join(5)
        super().close()

    def report(self, msg_type: str = "device_heartbeat", **state: Any) -> None:
        """Send a register or heartbeat with ``state`` (capacity, load, sessions) from now on."""
        self.state.update(state)
        msg = self.session.msg(msg_type, {"device": self.name, **self.state,
                                          "requests": list(self.held)},
                               metadata={"cellbus": {"device": self.name}})
        self._send(msg)
        if not self._beats.is_alive() and not self._stopping.is_set():
            self._beats.start()

    def _beat(self) -> None:
        while not self._stopping.wait(0.5):
            self.report()

    def _send(self, msg: Message) -> None:
        with self._lock:
            self.sock.send_multipart(self.session.serialize(msg))

    def recv(self, timeout: float = 10.0) -> Message | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.sock.poll(50):
                    _, msg = self.session.deserialize(self.sock.recv_multipart())
                    return self._keep(msg)
            time.sleep(0.001)
        return None

    def next_request(self, timeout: float = 10) -> Message:
        """The next request the broker sends (broker heartbeats skipped); it is held until
        answered."""
        request = self.wait_for(lambda m: m["msg_type"] != "broker_heartbeat", timeout)
        self.held.append(request["msg_id"])
        return request

    def answer(self, request: Message, *messages: tuple[str, dict[str, Any]]) -> None:
        """Send ``(msg_type, content)`` messages about ``request``, as its session's worker;
        it is no longer held."""
        facts = dict(request["metadata"]["cellbus"], device=self.name)
        for msg_type, content in messages:
            header = self.session.msg_header(msg_type)
            header["session"] = facts["session"]
            self._send(self.session.msg(msg_type, content, parent=request, header=header,
                                        metadata={"cellbus": dict(facts)}))
        if request["msg_id"] in self.held:
            self.held.remove(request["msg_id"])


def wait_gateway_linked(chain: Chain, timeout: float = 15) -> None:
    """Until the gateway reaches the broker (its log says so when the link's handshake is
    done): right after it starts, its link may still be connecting, and a request then gets
    503 "not reachable". Waits on the log, not on a request, so the gateway's access log
    holds only the test's own requests. Both of its links: its requests' and its output
    feed's (/ready says not ready until the feed's is up too)."""
    gateway = chain.gateway
    assert gateway is not None
    gateway.wait_for_log(r"link to the broker at \S+ is up", timeout)
    until(lambda: len(set(re.findall(r"link to the broker at (\S+) is up", gateway.log))) >= 2,
          "the gateway's two links to the broker", timeout)


def wait_broker_answers(chain: Chain, timeout: float = 15) -> None:
    """Until the gateway gets an answer from a restarted broker (its link connects again by
    itself; until then a request gets 503): asks with a request, since its log may not yet
    say that it lost the old broker."""
    deadline = time.monotonic() + timeout
    while chain.update("-/-/-")[0] == 503 and time.monotonic() < deadline:
        time.sleep(0.05)


def replayed_seqs(chain: Chain, user: str, worksheet: str) -> list[int]:
    """The seqs a WebSocket subscription from since=0 replays for the worksheet."""
    async def replay() -> list[int]:
        ws = await websocket_connect(f"ws://127.0.0.1:{chain.port}/ws")
        await ws.write_message(json.dumps({"header": {"msg_type": "subscribe_request"},
                                           "content": {"user": user, "worksheet": worksheet,
                                                       "since": 0}}))
        seqs = []
        async with asyncio.timeout(10):
            while True:
                msg = json.loads(await ws.read_message())
                if msg["msg_type"] == "subscribe_reply":
                    break
                seqs.append(msg["metadata"]["cellbus"]["seq"])
        ws.close()
        while await ws.read_message() is not None:
            pass
        return seqs

    return asyncio.run(replay())


def until(condition: Any, what: str, timeout: float = 15.0,
          pause: Callable[[], object] = lambda: time.sleep(0.02)) -> Any:
    """Poll ``condition()`` until it returns something true, and return that; at the
    deadline, an AssertionError naming ``what`` (a wait never goes on silently). A browser
    test whose condition is filled by Playwright's events (a route, a frame) pauses in
    Playwright (``pause=lambda: page.wait_for_timeout(20)``): its sync API delivers them only
    while it is called, never during a time.sleep."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"gave up after {timeout:g} s waiting for {what}"
        pause()
    return value


class Feed:
    """The broker's output feed as a gateway of ``chain`` gets it (a CURVE SUB on its PUB),
    for a test to wait on output that no gateway may be there to show."""

    def __init__(self, chain: Chain) -> None:
        self.session = Session(Path(chain.key_file).read_bytes().strip())
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.linger = 0
        chain.client_keys("feed", "gateway").connect_with(self.sock)
        self.sock.subscribe(b"")
        self.sock.connect(chain.publish_ep)

    def wait_for(self, predicate: Any, what: str, timeout: float = 15.0) -> Message:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if self.sock.poll(int(left * 1000) + 1):
                _, msg = self.session.deserialize(self.sock.recv_multipart())
                if predicate(msg):
                    return msg
        raise AssertionError(f"the broker published no {what} within {timeout:g} s")

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()

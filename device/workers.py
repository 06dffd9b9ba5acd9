"""One session worker process as the device sees it: spawn, relay, and notice its death.

The worker runs ``session.worker`` over one end of a socketpair (``protocol.link``); it never
holds the bus key. A :class:`Worker` runs the session's requests one at a time, stamps every
record the worker sends into a signed bus message about the request it is running (so a worker
can only speak for its own session, about its own request) and hands it to ``upstream``.
While upstream has no room (the device's outbox is full), it reads nothing more from the
worker, whose writes then block: backpressure, never a drop.

If the process exits while a request runs, the request ends with an ``error`` (ename
``WorkerDied``, naming the exit code or signal) and a failed ``execute_reply``.

Nothing a worker says about identity or routing is believed. A record with a field a worker
may not set (``header``, ``session``...), a ``parent`` other than the running request,
routing facts in its metadata, a msg_type that is no session output (every bus control
message is one), a malformed shape, or content the bus cannot carry is rejected: counted
(``Worker.rejected``; the device reports its total in heartbeats) and logged, the first at
once, then at most one line per ``REJECT_LOG_INTERVAL``. What a worker says about itself
(``worker_log``) is logged here, labelled and quoted, never relayed. A record that breaks
the link's framing ends the worker (``LinkViolation``). Every record costs pacing and
counts against ``--max-output`` by its size, whatever its type.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from protocol.kernels import DEFAULT_KERNEL
from protocol import msgtypes as mt
from protocol.asked import Asked, from_content, show
from protocol.errors import ProtocolError
from protocol.link import OverseerLink
from protocol.requests import Ending, failed, stamp
from protocol.wire import Message, Session

from .backlog import CommBacklog
from .launcher import ForkedProcess
from .limits import Limits, explain, explain_exit
from .pacing import TokenBucket
from .prompts import INPUT_TIMEOUT, Prompt
from .usage import MemoryWatch, seen_usage, usage_of

log = logging.getLogger("cellbus.device")

Upstream = Callable[[Message], Awaitable[None]]
#: Waits while upstream has no room for more output (the device's outbox is full).
Room = Callable[[], Awaitable[None]]


async def no_wait() -> None:
    """A :data:`Room` that never waits."""
#: Output whose metadata (checked by :meth:`Worker._forged`) goes on with it.
COMM_OUTPUT = frozenset({mt.COMM_OPEN, mt.COMM_MSG, mt.COMM_CLOSE})
#: How long a worker gets to exit after its link closes before it is killed.
EXIT_GRACE = 2.0
#: What a worker's record may hold (protocol.link). Anything else, such as a ``header``,
#: ``session`` or ``parent_header``, claims an identity or a route only the device decides.
RECORD_KEYS = frozenset({"msg_type", "content", "parent", "metadata", "buffers"})
#: Bytes of pacing every record costs at least, accepted or rejected, so that a worker
#: sending floods of tiny records is slowed like one printing floods of text.
RECORD_COST = 512
#: Seconds between log lines about one worker's rejected records (the first is logged).
REJECT_LOG_INTERVAL = 10.0
#: Seconds between two lines a worker has the device log about itself, and their length.
WORKER_LOG_INTERVAL = 1.0
WORKER_LOG_CHARS = 2000


def output_size(msg_type: str, content: dict[str, Any], buffers: list[bytes]) -> int:
    """Bytes of output a record carries, for --max-output and pacing (roughly, cheaply)."""
    if msg_type == mt.STREAM:
        text = content.get("text")
        return len(text) if isinstance(text, str) else 0
    data = content.get("data")
    size = sum(len(b) for b in buffers)
    if isinstance(data, dict):
        size += sum(len(v) for v in data.values() if isinstance(v, str))
    return size


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "exited"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by signal {-returncode} ({name})"
    return f"exited with code {returncode}"


class Worker:
    """A live worker process serving one session; requests run one at a time, in order."""

    def __init__(self, *, session_id: str, device_id: str, bus: Session, upstream: Upstream,
                 proc: ForkedProcess, room: Room = no_wait, link: OverseerLink, workdir: str,
                 limits: Limits,
                 max_output: int, pacer: TokenBucket, notice: str | None = None,
                 input_timeout: float = INPUT_TIMEOUT, kernel: str = DEFAULT_KERNEL) -> None:
        self.session_id = session_id
        self.kernel = kernel
        self.device_id = device_id
        self.bus = bus
        self.upstream = upstream
        self.room = room
        self.proc = proc
        self.link = link
        self.workdir = workdir
        self.notice = notice
        self.limits = limits
        self.max_output = max_output
        self.pacer = pacer
        self.output_bytes = 0
        #: Whether this session has shown an interact (it then lives for --interact-timeout).
        self.interactive = False
        self.queue: collections.deque[Message] = collections.deque()
        self.comms = CommBacklog(session_id)  # bounds the client comm messages queued
        self.current: Message | None = None
        #: When the running request is finished (protocol.requests), and whether it replied.
        self._ending: Ending | None = None
        self.last_used = time.monotonic()
        #: Records of this worker refused (forged, malformed, out of turn), and their log.
        self.rejected = 0
        self._reject_why = ""
        self._reject_logged = 0.0
        self._reject_logged_count = 0
        #: When the worker's last worker_log line was logged, and how many were dropped since.
        self._said_at = -WORKER_LOG_INTERVAL
        self._unsaid = 0
        self.exit_reason: str | None = None
        #: Why the device closed this worker on purpose (idle timeout, shutdown), else None.
        self.closing_reason: str | None = None
        #: When the running request started (monotonic), and the limit that killed it.
        self.started_at = 0.0
        #: The running request's own limits (protocol.asked), tighter than ``limits``.
        self.asked: Asked = {}
        self._memory: MemoryWatch | None = None
        self.limit_hit: tuple[str, str] | None = None
        self.done = asyncio.Event()
        #: The prompt (input()) the running request waits on, if any (device/prompts.py).
        self.prompt = Prompt(self.link.send, input_timeout, f"session {session_id}")
        self._pump = asyncio.create_task(self._pump_records(), name=f"worker.{proc.pid}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def busy(self) -> bool:
        return self.current is not None or bool(self.queue)

    # -- requests ---------------------------------------------------------------------------

    async def submit(self, request: Message) -> None:
        """Queue ``request``; it runs when the ones before it have finished."""
        self.last_used = time.monotonic()
        if not self.comms.admit(self.queue, request):
            return  # a comm message over the backlog: dropped (and logged)
        self.queue.append(request)
        if self.current is None:
            await self._next()

    async def _next(self) -> None:
        while self.current is None and self.queue and not self.done.is_set():
            request = self.queue.popleft()
            self.current, self._ending = request, Ending(request["msg_type"])
            self.started_at = time.monotonic()
            self.prompt.started()
            self.output_bytes = 0
            content = request["content"]
            self.asked = from_content(content) if request["msg_type"] == mt.EXECUTE_REQUEST \
                and isinstance(content, dict) else {}
            if self._memory is not None:
                self._memory.stop()  # the last request's, if it ended without a reply
            self._memory = MemoryWatch(self.proc.pid)
            if "wall" in self.asked:
                asyncio.get_running_loop().call_later(self.asked["wall"], self._wall_passed,
                                                      request["msg_id"])
            try:
                await self.link.send({"msg_type": request["msg_type"],
                                      "msg_id": request["msg_id"],
                                      "content": request["content"]})
            except (ConnectionError, OSError):
                return  # the pump sees the exit and fails the request

    def _wall_passed(self, msg_id: str) -> None:
        """The wall time a request asked for has passed: stop it if it still runs."""
        if self.current is not None and self.current["msg_id"] == msg_id:
            wall = show("wall", self.asked["wall"])
            log.info("device stopping session %s: execution over the %s it asked for",
                     self.session_id, wall)
            self.stop_for_limit("TimeLimitExceeded", f"this cell ran for longer than the {wall} "
                                "it asked for (limits.wall) and was stopped; the session "
                                "restarts fresh")

    def stop_for_limit(self, ename: str, evalue: str) -> None:
        """End the running request because it hit a limit: the worker is killed and the
        request fails with ``ename``/``evalue`` instead of WorkerDied."""
        if self.current is not None and self.limit_hit is None:
            self.limit_hit = (ename, evalue)
            self.proc.kill()

    def interrupt(self) -> bool:
        """SIGINT to the worker, which raises KeyboardInterrupt in the running code."""
        if self.current is None or self.proc.returncode is not None:
            return False
        self.proc.send_signal(signal.SIGINT)
        return True

    # -- output -----------------------------------------------------------------------------

    async def _emit(self, msg_type: str, content: dict[str, Any],
                    buffers: list[bytes] | None = None,
                    metadata: dict[str, Any] | None = None) -> None:
        assert self.current is not None
        await self.upstream(stamp(self.bus, self.current, msg_type, content,
                                  session=self.session_id, device=self.device_id,
                                  buffers=buffers, metadata=metadata))

    async def _pump_records(self) -> None:
        try:
            while True:
                rejected = self.rejected
                await self.room()  # backpressure: a full outbox leaves the worker's writes blocked
                try:
                    record = await self.link.recv()
                except ProtocolError as e:
                    self._reject(str(e))
                    if e.reason != "decode":  # framing lost: the stream is unusable
                        self.stop_for_limit("LinkViolation", "the session's worker sent the "
                                            f"device malformed data ({e.reason}) and was "
                                            "stopped; the session restarts fresh")
                        break
                    # "decode": the record was read whole, so the next one is still in step.
                else:
                    if record is None:
                        break
                    await self._relay(record)
                if self.rejected != rejected:  # rejections cost pacing too: no free floods
                    await self.pacer.take(max(RECORD_COST, self.link.last_size))
        finally:
            self._log_rejections(final=True)
            await self._reap()

    def _reject(self, why: str) -> None:
        """Drop a record, count it, and log it: the first at once, then at most one line per
        REJECT_LOG_INTERVAL with the count and the latest reason."""
        self.rejected += 1
        self._reject_why = why
        if self.rejected == 1 or time.monotonic() - self._reject_logged >= REJECT_LOG_INTERVAL:
            self._log_rejections(final=False)

    def _log_rejections(self, *, final: bool) -> None:
        unlogged = self.rejected - self._reject_logged_count
        if not unlogged:
            return
        log.warning("device rejected %s from worker %d (session %s)%s: %s",
                    "a record" if unlogged == 1 else f"{unlogged} records", self.proc.pid,
                    self.session_id, f", {self.rejected} in all" if final else "",
                    self._reject_why)
        self._reject_logged = time.monotonic()
        self._reject_logged_count = self.rejected

    def _log_worker(self, content: Any) -> None:
        """Write what the worker says about itself (``worker_log``) to the device's log:
        labelled with its pid and session, quoted (so it cannot pass for a line of the
        device's own), cut at WORKER_LOG_CHARS, at most one line per WORKER_LOG_INTERVAL."""
        text = content.get("text") if isinstance(content, dict) else None
        if not isinstance(text, str):
            return self._reject("worker_log without a text")
        now = time.monotonic()
        if now - self._said_at < WORKER_LOG_INTERVAL:
            self._unsaid += 1
            return
        unsaid, self._unsaid, self._said_at = self._unsaid, 0, now
        log.warning("worker %d (session %s) says: %r%s", self.proc.pid, self.session_id,
                    text[:WORKER_LOG_CHARS],
                    f" ({unsaid} earlier lines not logged)" if unsaid else "")

    def _forged(self, record: dict[str, Any]) -> str | None:
        """Why ``record`` claims an identity or route it does not have (None: it does not).

        The device stamps every message with the session and request it knows itself; a
        record that says anything else about who speaks, or for which request, is refused.
        """
        extra = sorted(str(k)[:40] for k in record if k not in RECORD_KEYS)
        if extra:
            return f"record has fields a worker may not set: {', '.join(extra[:5])}"
        parent = record.get("parent")
        running = self.current["msg_id"] if self.current is not None else None
        if running is not None and parent not in (None, "", running):
            return f"record claims to answer request {str(parent)[:64]!r}, not the one it runs"
        metadata = record.get("metadata")
        if metadata is not None and (not isinstance(metadata, dict) or "cellbus" in metadata):
            return "record carries routing facts (metadata.cellbus), which only the device sets"
        return None

    async def _relay(self, record: dict[str, Any]) -> None:
        msg_type = record["msg_type"]
        content = record.get("content")
        buffers = record.get("buffers") or []
        if msg_type == mt.WORKER_LOG:  # paced like output: no free floods of the log
            self._log_worker(content)
            return await self.pacer.take(max(RECORD_COST, self.link.last_size))
        if msg_type not in mt.WORKER_OUTPUT_TYPES:
            return self._reject(f"msg_type {msg_type[:64]!r} is not a session output")
        if (forged := self._forged(record)) is not None:
            return self._reject(forged)
        if not isinstance(content, dict) or not isinstance(buffers, list) or not all(
                isinstance(b, bytes) for b in buffers):
            return self._reject(f"{msg_type} with malformed content or buffers")
        if self.current is None:
            return self._reject(f"{msg_type} while no request runs")
        if self.limit_hit is not None:
            return  # the request is being stopped; what it still says is dropped
        self.last_used = time.monotonic()
        # Whatever its type, a record's bytes count: a huge "status" is output too.
        size = max(output_size(msg_type, content, buffers), self.link.last_size)
        self.output_bytes += size
        if self.max_output and self.output_bytes > self.max_output:
            return await self._cut_output()
        await self.pacer.take(max(RECORD_COST, size))
        if msg_type == mt.INTERACT_START:
            self.interactive = True
        elif msg_type == mt.INPUT_REQUEST:
            self.prompt.opened()
        if msg_type in (mt.ERROR, mt.EXECUTE_REPLY) and isinstance(content.get("ename"), str):
            content = self._explain(content)
        metadata = None
        if msg_type == mt.EXECUTE_REPLY:
            metadata = {"usage": usage_of(record.get("metadata"), self.output_bytes,
                                          self._memory.stop() if self._memory else 0)}
        elif msg_type in COMM_OUTPUT:  # a widget's comm_open names its protocol version
            metadata = record.get("metadata")
        try:
            await self._emit(msg_type, content, buffers, metadata)
        except ProtocolError as e:  # not representable on the bus (e.g. bytes in JSON)
            return self._reject(f"{msg_type} cannot be sent on: {e}")
        if msg_type == mt.STATUS and content.get("execution_state") == "busy" and self.notice:
            notice, self.notice = self.notice, None
            await self._emit(mt.STREAM, {"name": "stderr", "text": notice})
        assert self._ending is not None  # set with self.current
        if self._ending.see(msg_type, content) is not None:  # finished
            self.current = None
            self.prompt.closed()
            await self._next()

    def _explain(self, content: dict[str, Any]) -> dict[str, Any]:
        """Add, to an error a limit caused, which limit it was."""
        ename = content["ename"]
        if ename == "MemoryError" and "memory" in self.asked:
            why: str | None = (f"this cell asked for a memory limit of "
                               f"{show('memory', self.asked['memory'])} (limits.memory)")
        else:
            why = explain(self.limits, ename, str(content.get("evalue", "")))
        if why is None:
            return content
        content = {**content, "evalue": f"{content.get('evalue', '')} ({why})"}
        if isinstance(content.get("traceback"), list):
            content["traceback"] = [*content["traceback"], f"cellbus: {why}"]
        return content

    async def _cut_output(self) -> None:
        limit = self.max_output
        await self._emit(mt.STREAM, {"name": "stderr", "text": (
            f"\ncellbus: output cut here: this cell printed more than {limit / 2**20:g} MiB "
            "(--max-output).\n")})
        self.stop_for_limit("OutputLimitExceeded", f"this cell's output passed the "
                            f"{limit / 2**20:g} MiB limit (--max-output); the rest was cut and "
                            "the cell was stopped; the session restarts fresh")

    async def _reap(self) -> None:
        self.link.close()
        try:
            await asyncio.wait_for(self.proc.wait(), EXIT_GRACE)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self.exit_reason = describe_exit(self.proc.returncode)
        if self._memory is not None:
            self._memory.stop()
        if self.current is not None and not (self._ending and self._ending.replied):
            await self._fail_current()
        self.current = None
        self.prompt.closed()
        self.done.set()

    async def refuse(self, request: Message, ename: str, evalue: str,
                     reply_metadata: dict[str, Any] | None = None) -> None:
        """End ``request`` (one that never ran, or whose worker died) with an error, a
        failed reply and idle."""
        for msg in failed(self.bus, request, ename, evalue, session=self.session_id,
                          device=self.device_id, reply_metadata=reply_metadata):
            await self.upstream(msg)

    async def _fail_current(self) -> None:
        assert self.current is not None
        ename, evalue = self.limit_hit or self._asked_exit() or explain_exit(
            self.limits, self.proc.returncode, oom_killed=self.proc.oom_killed) or (
            "WorkerDied", f"the session's worker process {self.exit_reason} while running "
                          "this cell")
        log.warning("worker %d of session %s %s mid-execution (%s)", self.proc.pid,
                    self.session_id, self.exit_reason, ename)
        await self.refuse(self.current, ename, evalue, {"usage": seen_usage(
            time.monotonic() - self.started_at, self.output_bytes)}
            if self.current["msg_type"] == mt.EXECUTE_REQUEST else None)

    def _asked_exit(self) -> tuple[str, str] | None:
        """(ename, evalue) when the worker's exit shows the request's own CPU limit ended it."""
        if self.proc.returncode == -signal.SIGXCPU and "cpu" in self.asked:
            return ("CPULimitExceeded", f"this cell used the {show('cpu', self.asked['cpu'])} "
                    "of CPU time it asked for (limits.cpu) and was stopped; the session "
                    "restarts fresh")
        return None

    async def close(self, *, kill: bool = False) -> None:
        """Ask the worker to exit (close its link); kill it if it does not, or if ``kill``."""
        if kill and self.proc.returncode is None:
            self.proc.kill()
        self.link.close()
        await self.done.wait()

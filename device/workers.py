"""One session worker process as the device sees it: spawn, relay, and notice its death.

The worker runs ``session.worker`` over one end of a socketpair (``protocol.link``); it never
holds the bus key. A :class:`Worker` runs the session's requests one at a time, stamps every
record the worker sends into a signed bus message about the request it is running (so a worker
can only speak for its own session, about its own request) and hands it to ``upstream``.
While upstream has no room (the device's outbox is full), it reads nothing more from the
worker, whose writes then block: backpressure, never a drop.

If the process exits while a request runs, the request ends with an ``error`` (ename
``WorkerDied``, naming the exit code or signal) and a failed ``execute_reply``.

Nothing a worker says about identity or routing is believed, and a record the device cannot
accept ends the worker (:mod:`device.admission`): bytes that are no record (not msgpack, the
wrong shape, oversize, amplifying), a msg_type that is no session output (every bus control
message is one), a field a worker may not set (``header``, ``session``...), routing facts in
its metadata, a ``parent`` naming a request it was never given, fields of the wrong type.
The request ends with ``LinkViolation``, the session restarts fresh; what the worker sent
before is relayed. A record cut by the stream's end (a death while it wrote), late output (of
an earlier request, or while none runs) or output the bus cannot carry is only dropped. Each
is counted (``Worker.rejected``, in the device's heartbeats) and logged at a bounded rate
(:mod:`device.workerlog`), as is what a worker says about itself (``worker_log``), never
relayed. Every record costs pacing and counts against ``--max-output`` by its size.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from protocol.kernels import DEFAULT_KERNEL
from protocol import msgtypes as mt
from protocol import outputwords
from protocol.asked import Asked, from_content
from protocol.errors import ProtocolError
from protocol.link import LinkCut, LinkStalled, OverseerLink
from protocol.requests import Ending, aborted, failed, stamp
from protocol.wire import Message, Session

from .aborts import Aborts
from .admission import RECORD_COST, output_size, refusal
from .endings import asked_exit, describe_exit, explain_error, oom_note
from .backlog import CommBacklog
from .cgroups import oom_kills_of
from .launcher import ForkedProcess
from .limits import Limits, explain_exit
from .pacing import TokenBucket
from .prompts import INPUT_TIMEOUT, Prompt
from .stops import StopWatch
from .usage import MemoryWatch, seen_usage, usage_of
from .workerlog import WorkerLog
from .workerstops import Stopping

log = logging.getLogger("cellbus.device")

Upstream = Callable[[Message], Awaitable[None]]
#: Waits while upstream has no room for more output of the user named (the device's outbox
#: is full, or holds that user's share: device/outbox.py).
Room = Callable[[str | None], Awaitable[None]]


async def no_wait(user: str | None = None) -> None:
    """A :data:`Room` that never waits."""
#: Output whose metadata (checked by :func:`device.admission.forged`) goes on with it.
COMM_OUTPUT = frozenset({mt.COMM_OPEN, mt.COMM_MSG, mt.COMM_CLOSE})
#: Requests a worker was given that are remembered, for output of earlier cells.
MAX_GIVEN = 1024
#: How long a worker gets to exit after its link closes before it is killed.
EXIT_GRACE = 2.0
#: How a worker ended whose link closed at its end while it ran on (its code closed the
#: descriptor) and that the device then killed: not "killed by signal 9 (SIGKILL)", which
#: names no cause and reads as the out-of-memory killer's.
HUNG_UP = ("closed its link to the device (its code closed a descriptor it had not opened, "
           "as os.closerange(3, ...) does) and did not exit, so the device ended it")


class Worker(Stopping):
    """A live worker process serving one session; requests run one at a time, in order."""

    def __init__(self, *, session_id: str, device_id: str, bus: Session, upstream: Upstream,
                 proc: ForkedProcess, room: Room = no_wait, link: OverseerLink, workdir: str,
                 limits: Limits,
                 max_output: int, pacer: TokenBucket, notice: str | None = None,
                 input_timeout: float = INPUT_TIMEOUT, kernel: str = DEFAULT_KERNEL,
                 aborts: Aborts | None = None) -> None:
        self.session_id = session_id
        #: The user whose session this is (its requests' ``metadata.cellbus.user``), once a
        #: request named one: its output waits only for that user's share of the outbox.
        self.user: str | None = None
        #: Which requests stop those queued behind them (stop_on_error): the overseer's,
        #: so that it outlives this worker when a fresh one takes its queue.
        self.aborts = aborts if aborts is not None else Aborts()
        #: Whether :meth:`_next` is answering aborted requests (none starts meanwhile).
        self._aborting = False
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
        self._began = self._interrupt_asked = False  # see Stopping
        self.last_used = time.monotonic()
        #: Its rejected records (counted) and what it says about itself, as logged.
        self.logbook = WorkerLog(proc.pid, session_id)
        #: What the worker sent that ended it (a record it may not send, device.admission;
        #: malformed data), in words, if it was ended so.
        self.violation: str | None = None
        #: The msg_ids of the requests the worker was given, newest last (MAX_GIVEN of them):
        #: a thread of an earlier cell may still print under one of them.
        self.given: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.exit_reason: str | None = None
        #: The link ended at the worker's end (its code closed the descriptor, or it died),
        #: not because this device closed it (:meth:`close`).
        self.hung_up = False
        self._closed_here = False
        #: Why the device closed this worker on purpose (idle timeout, shutdown), else None.
        self.closing_reason: str | None = None
        #: The broker ended this worker's requests itself (it took the device for lost):
        #: nothing is owed for them, not even an error (see Overseer.abandon).
        self.abandoned = False
        #: When the running request started (monotonic), and the limit that killed it.
        self.started_at = 0.0
        #: The running request's own limits (protocol.asked), tighter than ``limits``.
        self.asked: Asked = {}
        #: Its cgroup's out-of-memory kills when the running request started (a kernel's).
        self.oom_kills = 0
        self._memory: MemoryWatch | None = None
        self._stops: StopWatch | None = None
        self.limit_hit: tuple[str, str] | None = None
        #: The error the running cell ended with when the worker died under it (the
        #: overseer's line on the worker's end says it; this class logs no end of its own).
        self.failed_running: str | None = None
        self.done = asyncio.Event()
        #: The prompt (input()) the running request waits on, if any (device/prompts.py).
        self.prompt = Prompt(self.link.send, input_timeout, f"session {session_id}")
        self._pump = asyncio.create_task(self._pump_records(), name=f"worker.{proc.pid}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def rejected(self) -> int:
        """Records of this worker refused (forged, malformed, out of turn)."""
        return self.logbook.rejected

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
        if self.current is None and not self._aborting:
            await self._next()

    async def _next(self) -> None:
        while self.current is None and self.queue and not self.done.is_set():
            request = self.queue.popleft()
            if self.aborts.aborts(self.session_id, request):
                await self._abort(request)
                continue
            self.current, self._ending = request, Ending(request["msg_type"])
            meta = request.get("metadata")
            facts = meta.get("cellbus") if isinstance(meta, dict) else None
            if isinstance(facts, dict) and isinstance(facts.get("user"), str):
                self.user = facts["user"]
            self._began = self._interrupt_asked = False
            self.given[request["msg_id"]] = None
            if len(self.given) > MAX_GIVEN:
                self.given.popitem(last=False)
            self.started_at = time.monotonic()
            self.prompt.started()
            self.output_bytes = 0
            content = request["content"]
            self.asked = from_content(content) if request["msg_type"] == mt.EXECUTE_REQUEST \
                and isinstance(content, dict) else {}
            if self._memory is not None:
                self._memory.stop()  # the last request's, if it ended without a reply
            self._memory = MemoryWatch(self.proc.pid)
            if self.kernel != DEFAULT_KERNEL:  # one the OOM killer may end alone (_relay)
                self.oom_kills = oom_kills_of(self.proc.pid)
            if self._stops is not None:
                self._stops.stop()
            self._stops = StopWatch(self.proc.pid, functools.partial(self._runs, request),
                                    functools.partial(self._stopped, request),
                                    depth=1 if self.kernel == DEFAULT_KERNEL else 2)
            if "wall" in self.asked:
                asyncio.get_running_loop().call_later(self.asked["wall"], self._wall_passed,
                                                      request["msg_id"])
            record = {"msg_type": request["msg_type"], "msg_id": request["msg_id"],
                      "content": request["content"]}
            if request.get("buffers"):  # a client comm message's bytes, for the kernel
                record["buffers"] = request["buffers"]
            try:
                await self.link.send(record)
            except LinkStalled as e:  # its code took over its link and reads no more
                self._reject(str(e))
                self.stop_for_limit("LinkViolation", "the session's worker left what the "
                                    "device sent it unread and was stopped; the session "
                                    "restarts fresh")
            except (ConnectionError, OSError):
                return  # the pump sees the exit and fails the request

    async def _abort(self, request: Message) -> None:
        """Answer ``request`` as aborted (device/aborts.py) without giving it to the worker."""
        self._aborting = True
        try:
            for msg in aborted(self.bus, request, session=self.session_id,
                               device=self.device_id):
                await self.upstream(msg)
        finally:
            self._aborting = False

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
                await self.room(self.user)  # backpressure: its user's share or a full outbox
                try:
                    record = await self.link.recv()
                except LinkCut as e:  # it died while writing: its death's error, half dropped
                    self._reject(str(e))
                    break
                except ProtocolError as e:  # not a record at all (see device.admission)
                    self._violated(str(e), f"malformed data ({e.reason})")
                    break
                if record is None:
                    self.hung_up = not self._closed_here
                    break
                await self._relay(record)
                if self.violation is not None:
                    break
                if self.rejected != rejected:  # rejections cost pacing too: no free floods
                    await self.pacer.take(max(RECORD_COST, self.link.last_size))
        finally:
            self.logbook.log_rejections(final=True)
            await self._reap()

    def _reject(self, why: str) -> None:
        """Drop a record, counted and logged (:meth:`WorkerLog.reject`)."""
        self.logbook.reject(why)

    def _violated(self, why: str, what: str) -> None:
        """The worker sent ``what``, which no worker sends unless code writes onto its link:
        reject it and end the worker, the running request with ``LinkViolation``."""
        self._reject(why)
        self.violation = what
        self.stop_for_limit("LinkViolation", f"the session's worker sent the device {what} "
                            "and was stopped; the session restarts fresh")
        if self.proc.returncode is None:
            self.proc.kill()  # also between requests, when there is none to stop

    async def _relay(self, record: dict[str, Any]) -> None:
        refused = refusal(record, running=self.current["msg_id"] if self.current else None,
                          earlier=self.given)
        if refused is not None:
            if refused.fatal:
                return self._violated(refused.why, f"a record it may not send ({refused.why})")
            return self._reject(refused.why)
        # refusal() checked these fields' types.
        msg_type, content = record["msg_type"], record["content"]
        buffers = record.get("buffers") or []
        if msg_type == mt.WORKER_LOG:  # paced like output: no free floods of the log
            self.logbook.said(content["text"])
            return await self.pacer.take(max(RECORD_COST, self.link.last_size))
        assert self.current is not None  # refusal() refuses output while none runs
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
            content = explain_error(content, self.limits, self.asked, oom_killed=content[
                "ename"] == "KernelDied" and oom_kills_of(self.proc.pid) > self.oom_kills)
        if msg_type == mt.EXECUTE_REPLY and (note := oom_note(
                self.limits, content, self.kernel != DEFAULT_KERNEL and
                oom_kills_of(self.proc.pid) > self.oom_kills)):
            await self._emit(mt.STREAM, {"name": "stderr", "text": note})
        metadata: dict[str, Any] | None = None
        if msg_type == mt.EXECUTE_REPLY:
            metadata = {"usage": usage_of(record.get("metadata"), self.output_bytes,
                                          self._memory.stop() if self._memory else 0)}
        elif msg_type in COMM_OUTPUT:  # a widget's comm_open names its protocol version
            metadata = record.get("metadata")
        elif msg_type == mt.STREAM and isinstance(extra := record.get("metadata"), dict) \
                and extra.get(mt.STDIN_ECHO) is True:  # input()'s echo: Jupyter's channels
            metadata = {mt.STDIN_ECHO: True}  # leave it out (the page shows it)
        try:
            await self._emit(msg_type, content, buffers, metadata)
        except ProtocolError as e:  # not representable on the bus (e.g. bytes in JSON)
            return self._reject(f"{msg_type} cannot be sent on: {e}")
        if msg_type == mt.STATUS and content.get("execution_state") == "busy":
            self._began = True
            if self._interrupt_asked:
                self._interrupt_asked = False
                self.interrupt()
            if self.notice:
                notice, self.notice = self.notice, None
                await self._emit(mt.STREAM, {"name": "stderr", "text": notice})
        assert self._ending is not None  # set with self.current
        if (end := self._ending.see(msg_type, content)) is not None:  # finished
            if self._memory is not None:  # a query, a comm message or an interact run has
                self._memory.stop()  # no execute_reply: else it sampled on, while idle
            self.aborts.ended(self.session_id, self.current, not end.ok)
            self.current = None
            self.prompt.closed()
            await self._next()

    async def _cut_output(self) -> None:
        limit = self.max_output
        await self._emit(mt.STREAM, {"name": "stderr",
                                     "text": outputwords.notice(outputwords.printed_cut(limit))})
        self.stop_for_limit(outputwords.PRINTED_TOO_MUCH, outputwords.printed_stop(limit))

    async def _reap(self) -> None:
        self.link.close()
        try:
            await asyncio.wait_for(self.proc.wait(), EXIT_GRACE)
            ended_here = False
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            ended_here = True
        self.exit_reason = HUNG_UP if ended_here and self.hung_up else \
            describe_exit(self.proc.returncode, self.proc.with_template)
        if self._memory is not None:
            self._memory.stop()
        if self._stops is not None:
            self._stops.stop()
        if self.current is not None and not self.abandoned and not (
                self._ending and self._ending.replied):
            await self._last_words()
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

    async def _last_words(self) -> None:
        """What the dead worker left in its descriptors' pipes (device.template), shown
        before its death, within --max-output."""
        for name, text in getattr(self.proc, "last_words", ()):
            self.output_bytes += len(text.encode())
            if self.limit_hit is None and not (
                    self.max_output and self.output_bytes > self.max_output):
                await self._emit(mt.STREAM, {"name": name, "text": text})

    async def _fail_current(self) -> None:
        assert self.current is not None
        code = self.proc.returncode
        # Closed on purpose (a restart, a deleted worksheet): said as for its queued cells,
        # not as a death ("WorkerDied: ... killed by signal 9") the user did not cause.
        closed = ("SessionClosed", f"the session was closed ({self.closing_reason}) while "
                  f"this cell ran; its worker {self.exit_reason}") if (
            self.closing_reason is not None and not self.abandoned) else None
        ename, evalue = self.limit_hit or closed or asked_exit(
            code, self.asked) or explain_exit(self.limits, code,
                                              oom_killed=self.proc.oom_killed) or (
            "WorkerDied", f"the session's worker process {self.exit_reason} while running "
                          "this cell")
        self.failed_running = ename
        await self.refuse(self.current, ename, evalue, {"usage": seen_usage(
            time.monotonic() - self.started_at, self.output_bytes)}
            if self.current["msg_type"] == mt.EXECUTE_REQUEST else None)

    async def close(self, *, kill: bool = False) -> None:
        """Ask the worker to exit (close its link); kill it if it does not, or if ``kill``."""
        if kill and self.proc.returncode is None:
            self.proc.kill()
        self._closed_here = True
        self.link.close()
        await self.done.wait()

"""The overseer: starts, tracks, times out and reaps the session workers of one device.

It keeps the session -> worker table of seed 000 step 6. A request for a session with no live
worker takes one from a pool of ready workers forked from the template process (each with its
limits set and its own private working directory), and the pool is refilled in the
background. A worker that died is replaced on the session's next request, which says so on
stderr. Workers idle for longer than ``idle_timeout`` are closed and the session reported
closed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from protocol.kernels import DEFAULT_KERNEL, kernel_of
from protocol.link import OverseerLink
from protocol.wire import Message, Session

from .aborts import Aborts
from .launcher import ForkedProcess, LaunchError, LaunchSpec, TemplateLauncher
from .pacing import TokenBucket
from .prompts import INPUT_TIMEOUT
from .workerends import log_end, why_ended
from .workers import Room, Upstream, Worker, no_wait

log = logging.getLogger("cellbus.device")

#: Sessions remembered after their worker ended, to explain a fresh worker to the user.
ENDED_MEMORY = 4096
#: Seconds between taking a ready worker and forking its replacement.
REFILL_DELAY = 0.05


class AtCapacity(Exception):
    """Raised when a new session would exceed the device's ``max_sessions``."""


Ready = tuple[ForkedProcess, OverseerLink, str]


@dataclass
class OverseerConfig:
    idle_timeout: float = 60.0
    #: Idle seconds a session that showed an interact lives (seed 001: "keep the worker
    #: open for X seconds"), so its controls keep working.
    interact_timeout: float = 600.0
    #: Workers kept forked and ready for new sessions.
    prefork: int = 2
    #: Bytes of output one execution may produce (0: unlimited).
    max_output: int = 16 * 1024 * 1024
    #: Output pacing per session: bytes per second sustained, and burst.
    output_rate: float = 2 * 1024 * 1024
    output_burst: float = 8 * 1024 * 1024
    #: Wall-clock seconds one execution may run; 0 means no limit.
    exec_timeout: float = 0.0
    #: Seconds a prompt (input()) waits for its answer before it ends with an error; 0: ever.
    input_timeout: float = INPUT_TIMEOUT
    max_sessions: int = 16
    launch: LaunchSpec = field(default_factory=LaunchSpec)
    #: Workers kept ready per kernel other than the built-in one (which keeps ``prefork``).
    kernel_prefork: int = 1

    def pool_size(self, kernel: str) -> int:
        """Ready workers kept for ``kernel``."""
        return self.prefork if kernel == DEFAULT_KERNEL else self.kernel_prefork

    def maxima(self) -> dict[str, float]:
        """The most a request may ask for (protocol.asked), reported to the broker: 0 is
        no maximum."""
        limits = self.launch.limits
        return {"wall": self.exec_timeout, "memory": limits.memory_bytes,
                "cpu": limits.cpu_seconds}

#: Seconds between log lines about failed preforks (the first is logged at once).
PREFORK_LOG_INTERVAL = 30.0


class Overseer:
    """Owns every worker process of one device."""

    def __init__(self, *, bus: Session, device_id: str, upstream: Upstream,
                 on_closed: Callable[[str, str], Awaitable[None]],
                 config: OverseerConfig, room: Room = no_wait) -> None:
        self.bus = bus
        self.device_id = device_id
        self.upstream = upstream
        self.room = room
        self.on_closed = on_closed
        self.config = config
        self.workers: dict[str, Worker] = {}
        self.starting = 0
        self.ended: collections.OrderedDict[str, str] = collections.OrderedDict()
        #: What stops the requests queued behind it, per session (stop_on_error).
        self.aborts = Aborts()
        self.root = tempfile.mkdtemp(prefix=f"cellbus-{device_id}-")
        self._watchers: set[asyncio.Task[object]] = set()
        self.launcher = TemplateLauncher(config.launch)
        #: Ready workers per kernel offered (known once the template said which it runs).
        self.pools: dict[str, collections.deque[Ready]] = {}
        self._refilling: dict[str, int] = {}
        self._rejected_before = 0  # records rejected from workers that have ended
        #: Set once the device is asked to stop: failures to fork are expected then.
        self.stopping = False
        self._prefork_failures = 0
        self._prefork_logged = -PREFORK_LOG_INTERVAL

    @property
    def rejected(self) -> int:
        """Records rejected from this device's workers so far (forged, malformed, out of
        turn): reported in heartbeats, shown by ``bin/cellbus status``."""
        return self._rejected_before + sum(w.rejected for w in self.workers.values())

    @property
    def ready(self) -> list[Ready]:
        """Every ready worker, of all kernels."""
        return [r for pool in self.pools.values() for r in pool]

    @property
    def kernels(self) -> list[dict[str, str]]:
        """The kernels offered (name, display_name, language), as the template found them."""
        return [{k: v for k, v in kernel.items() if k != "backend"}
                for kernel in self.launcher.kernels]

    async def start(self) -> None:
        self.launcher.on_restarted = self._template_restarted
        await self.launcher.start()
        for kernel in self.launcher.kernels:
            self.pools[kernel["name"]] = collections.deque()
            self._refilling[kernel["name"]] = 0
        self.refill()

    def refill(self) -> None:
        """Fork workers in the background until each kernel's pool is full (none while
        stopping: the workers' folder is on its way out)."""
        for kernel, pool in self.pools.items():
            while not self.stopping and (len(pool) + self._refilling[kernel]
                                         < self.config.pool_size(kernel)):
                self._refilling[kernel] += 1
                task = asyncio.create_task(self._fork_ready(kernel), name=f"prefork.{kernel}")
                self._watchers.add(task)
                task.add_done_callback(self._watchers.discard)

    def _template_restarted(self) -> None:
        """A new template runs: the ready workers of the one that ended died with it; fork
        new ones."""
        for pool in self.pools.values():
            for ready in [r for r in pool if r[0].returncode is not None]:
                pool.remove(ready)
                _discard(ready)
        self.refill()

    async def _fork_ready(self, kernel: str) -> None:
        try:
            self.pools[kernel].append(await self._fork(kernel))
        except (LaunchError, OSError) as e:  # while stopping (Ctrl-C reached the template
            self._prefork_failed(e)            # too, or the folder is gone): expected
        finally:
            self._refilling[kernel] -= 1

    def _prefork_failed(self, e: Exception) -> None:
        """Log a failed prefork: the first at once, then one line per PREFORK_LOG_INTERVAL
        with how many failed meanwhile (a full uid range fails every refill)."""
        self._prefork_failures += 1
        now = time.monotonic()
        if self.stopping:
            log.info("device could not prefork a worker while stopping: %s", e)
        elif now - self._prefork_logged >= PREFORK_LOG_INTERVAL:
            more = self._prefork_failures - 1
            log.error("device could not prefork a worker: %s%s", e,
                      f" ({more} more failures since the last line)" if more else "")
            self._prefork_logged, self._prefork_failures = now, 0

    async def _fork(self, kernel: str) -> Ready:
        workdir = tempfile.mkdtemp(prefix="s-", dir=self.root)
        try:
            proc, sock = await self.launcher.fork(workdir, self.launcher.backend(kernel))
            return proc, await OverseerLink.open(sock), workdir
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise

    async def _take(self, kernel: str) -> Ready:
        """A ready worker from the kernel's pool (forked now if the pool is empty)."""
        pool = self.pools[kernel]
        while pool:
            ready = pool.popleft()
            if ready[0].returncode is None:
                # Refill after the new session's first output, not while it competes for CPU.
                asyncio.get_running_loop().call_later(REFILL_DELAY, self.refill)
                return ready
            _discard(ready)
        self.refill()
        return await self._fork(kernel)

    @property
    def load(self) -> int:
        """Sessions alive or starting (a starting one already holds a place)."""
        return len(self.workers) + self.starting

    def held_requests(self) -> list[str]:
        """msg_ids of every request running or queued here (reported to the broker)."""
        held = []
        for worker in self.workers.values():
            if worker.current is not None:
                held.append(worker.current["msg_id"])
            held.extend(r["msg_id"] for r in worker.queue)
        return held

    def holds(self, session_id: str, msg_id: str) -> bool:
        """Whether ``msg_id`` runs or waits in ``session_id``'s worker: a copy of a request
        goes to the session of the original, so only that worker is looked at (with 1,000
        sessions open, :meth:`held_requests` on every request cost the device ~16 % of its
        CPU)."""
        worker = self.workers.get(session_id)
        if worker is None:
            return False
        current = worker.current
        return (current is not None and current["msg_id"] == msg_id) or any(
            r["msg_id"] == msg_id for r in worker.queue)

    async def submit(self, session_id: str, request: Message,
                     kernel: str = DEFAULT_KERNEL) -> Worker:
        """Run ``request`` in the session's worker, starting one of ``kernel`` if there is
        none."""
        worker = self.workers.get(session_id)
        if worker is not None and worker.done.is_set():  # ended; its watcher has not run yet
            self._forget(worker)
            worker = None
        if worker is None:
            worker = await self._start(session_id, kernel)
        await worker.submit(request)
        return worker

    async def _start(self, session_id: str, kernel: str) -> Worker:
        if kernel not in self.pools:
            raise AtCapacity(f"device {self.device_id} does not offer the kernel {kernel!r}; "
                             f"it offers {', '.join(self.pools)}")
        if self.load >= self.config.max_sessions:
            raise AtCapacity(f"device {self.device_id} runs {self.load} sessions, its limit; "
                             "run the cell again in a few seconds")
        self.starting += 1
        try:
            proc, link, workdir = await self._take(kernel)
        except LaunchError as e:
            raise AtCapacity(f"device {self.device_id} cannot start a worker now: {e}") from None
        finally:
            self.starting -= 1
        previous = self.ended.pop(session_id, None)
        notice = (f"cellbus: started a fresh worker for this session because the previous "
                  f"one {previous}; variables defined before are gone.\n") if previous else None
        config = self.config
        worker = Worker(session_id=session_id, device_id=self.device_id, bus=self.bus,
                        upstream=self.upstream, room=self.room, proc=proc, link=link,
                        workdir=workdir,
                        limits=config.launch.limits, max_output=config.max_output,
                        pacer=TokenBucket(config.output_rate, config.output_burst),
                        notice=notice, input_timeout=config.input_timeout, kernel=kernel,
                        aborts=self.aborts)
        self.workers[session_id] = worker
        log.info("device started worker %d for session %s in %s", proc.pid, session_id, workdir)
        watcher = asyncio.create_task(self._watch(worker), name=f"watch.{proc.pid}")
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return worker

    async def _watch(self, worker: Worker) -> None:
        """When a worker ends: forget it, clean its directory, move its queue to a new one."""
        await worker.done.wait()
        log_end(worker)
        self._forget(worker)
        self._rejected_before += worker.rejected
        # rmtree never follows symlinks planted inside the directory (fd-based on Linux).
        shutil.rmtree(worker.workdir, ignore_errors=True)
        pending = list(worker.queue)
        worker.queue.clear()
        if pending and worker.closing_reason is None:
            # It died: its queued cells run in a fresh worker of the same session.
            for request in pending:
                try:
                    await self.submit(worker.session_id, request,
                                      kernel_of(request["metadata"]))
                except AtCapacity as e:
                    await worker.refuse(request, "AtCapacity", str(e))
            return
        for request in pending:  # closed on purpose (restart, shutdown): they end here
            await worker.refuse(request, "SessionClosed", f"the session was closed "
                                f"({worker.closing_reason}) before this cell ran")
        if worker.session_id not in self.workers:  # no request started a fresh one meanwhile
            await self.on_closed(worker.session_id, worker.closing_reason or why_ended(worker))

    def _forget(self, worker: Worker) -> None:
        """Drop an ended worker and, unless it was closed on purpose, remember why it ended
        (the session's next worker tells the user). Once per worker: its watcher calls this,
        and so does :meth:`submit` when a request for the session comes first."""
        if self.workers.get(worker.session_id) is not worker:
            return
        del self.workers[worker.session_id]
        if worker.closing_reason is None:
            self._remember_end(worker.session_id, why_ended(worker))

    def _remember_end(self, session_id: str, reason: str) -> None:
        self.ended[session_id] = reason
        while len(self.ended) > ENDED_MEMORY:
            self.ended.popitem(last=False)

    async def close_session(self, session_id: str, reason: str, *, kill: bool = False) -> bool:
        worker = self.workers.get(session_id)
        if worker is None:
            return False
        worker.closing_reason = reason
        self._remember_end(session_id, f"was closed ({reason})")
        await worker.close(kill=kill)
        return True

    async def abandon(self, session_id: str, reason: str) -> bool:
        """Kill the session's worker, owing nothing for its requests: the broker took this
        device for lost while it was silent (frozen, cut off), ended the running request
        with DeviceLost and placed the queued ones again, and told the worksheet its session
        is gone. A worker that went on would run the next cell with the variables the user
        was told are gone, and answer requests that have their one reply already."""
        worker = self.workers.get(session_id)
        if worker is None:
            return False
        worker.abandoned = True
        worker.queue.clear()
        return await self.close_session(session_id, reason, kill=True)

    def enforce_exec_timeout(self) -> None:
        """Stop executions that ran longer than ``exec_timeout`` (time spent waiting for an
        answer to input() not counted: a person may take a while to type)."""
        limit = self.config.exec_timeout
        if limit <= 0:
            return
        now = time.monotonic()
        for worker in self.workers.values():
            if worker.current is not None and (
                    now - worker.started_at - worker.prompt.waited() > limit):
                worker.stop_for_limit(
                    "TimeLimitExceeded",
                    f"this cell ran for longer than the {limit:g} s limit on one execution "
                    "(--exec-timeout) and was stopped; the session restarts fresh")

    def idle_limit(self, worker: Worker) -> float:
        """How long ``worker`` may sit idle: longer if it has interacts to keep alive."""
        if worker.interactive:
            return max(self.config.idle_timeout, self.config.interact_timeout)
        return self.config.idle_timeout

    async def sweep_idle(self) -> None:
        """Close workers idle for longer than their limit (the seed's poll timeout), each in
        a task: one that does not exit when its link closes is waited for up to EXIT_GRACE,
        and the sweep, which also stops cells past --exec-timeout, waited for each in turn."""
        now = time.monotonic()
        idle = [w for w in self.workers.values() if not w.busy and w.closing_reason is None
                and now - w.last_used > self.idle_limit(w)]
        for worker in idle:
            closing = asyncio.create_task(self.close_session(worker.session_id, "idle timeout"),
                                          name=f"idle.{worker.proc.pid}")
            self._watchers.add(closing)
            closing.add_done_callback(self._watchers.discard)

    async def stop(self) -> None:
        """Close every worker (killing those that do not exit) and remove their files."""
        self.stopping = True
        workers = list(self.workers.values())
        for worker in workers:
            worker.closing_reason = "device stopping"
        await asyncio.gather(*(w.close(kill=w.busy) for w in workers), return_exceptions=True)
        for _proc, link, _ in self.ready:
            link.close()
        if self._watchers:
            await asyncio.wait(set(self._watchers), timeout=5)
        await self.launcher.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _discard(ready: Ready) -> None:
    """Let go of a ready worker that died before it served: its link and its folder."""
    _proc, link, workdir = ready
    link.close()
    shutil.rmtree(workdir, ignore_errors=True)

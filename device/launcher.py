"""Starting worker processes: forked from a preloaded template, into a pool kept ready.

:class:`TemplateLauncher` runs ``device.template`` (see there) and asks it for workers over
its control channel. The overseer keeps ``prefork`` of them ready, each in its own fresh
working directory, and refills the pool in the background, so a new session takes a worker
that is already running instead of waiting for a Python to start.

A template that ends on its own (killed, or a crash) takes its workers with it; the
launcher starts a new one after :data:`RESTART_DELAY` (doubled, up to
:data:`RESTART_MAX_DELAY`, while it keeps ending within :data:`RESTART_STABLE` seconds) and
calls ``on_restarted``. A session that starts meanwhile waits for it, as for a cold start,
up to :data:`RESTART_WAIT` seconds, unless the template keeps ending (then ``AtCapacity``,
"run the cell again", at once: the wait holds the device's loop): every cell that reached
the device in that second was refused. Before that, a device whose template
ended refused every new session until an operator restarted it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from protocol.errors import ConfigError

from .limits import Limits
from .protections import Protections
from .sandbox import default_init_program
from .uids import DEFAULT_UIDS, LOCK_PATH, UidLease, auto_range, lease, parse_uids

log = logging.getLogger("cellbus.device")
MAX_PACKET = 65536
#: Seconds before a template that ended on its own is started again, at first.
RESTART_DELAY = 0.5
#: The longest wait between two starts of a template that keeps ending.
RESTART_MAX_DELAY = 30.0
#: A template that ran this long before it ended is started again after RESTART_DELAY.
RESTART_STABLE = 30.0
#: Seconds a worker to fork waits for a template being started again (it took every worker
#: along, so the device's loop has none to serve meanwhile).
RESTART_WAIT = 5.0
#: Seconds a template process may take to be ready (it imports the session runtime, the
#: --preload modules and every backend offered), and after how many the device says what
#: it is importing then.
READY_TIMEOUT = 60.0
SLOW_READY = 10.0

#: The device's environment variables the template process is started with: what Python,
#: the libraries it preloads and jupyter_client (finding kernelspecs) read. Nothing else: a
#: worker is a fork of the template, and session code reads the environment the template
#: was exec'd with from its own memory (the strings stay on the stack whatever os.environ
#: becomes), so a credential the device's operator exported must never get there.
TEMPLATE_ENV = frozenset({
    "PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "LD_LIBRARY_PATH", "VIRTUAL_ENV",
    "PYTHONPATH", "PYTHONHOME", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "PYTHONWARNINGS",
    "PYTHONUNBUFFERED", "JUPYTER_PATH", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR",
    "JUPYTER_PLATFORM_DIRS", "XDG_DATA_HOME", "XDG_DATA_DIRS", "XDG_CONFIG_HOME",
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"})


def template_environment(device: dict[str, str]) -> dict[str, str]:
    """The part of the ``device``'s environment that :data:`TEMPLATE_ENV` and the locale
    (``LC_*``) name."""
    return {k: v for k, v in device.items() if k in TEMPLATE_ENV or k.startswith("LC_")}


class LaunchError(Exception):
    """A worker could not be started (the template is gone, or fork failed)."""


@dataclass
class LaunchSpec:
    """How to start workers."""
    python: str = sys.executable
    backend: str | None = None
    preload: str = ""
    limits: Limits = field(default_factory=Limits)
    #: auto (what the machine allows), require (refuse to start without all of it), or off.
    sandbox: str = "auto"
    sandbox_uids: str = DEFAULT_UIDS
    #: Bytes of memory all sessions may use together (0: no budget).
    memory_budget: int = 0
    #: Kernels to offer, comma-separated names (see session.backends); "": the default ones.
    kernels: str = ""
    #: Host paths workers must not see even where a read-only system folder holds them.
    hide: tuple[str, ...] = ()
    #: The compiled program each worker's namespace init becomes ("": a Python init stays).
    init_program: str = field(default_factory=default_init_program)


class ForkedProcess:
    """A worker forked by the template: signal it by pid; its exit is reported by the template.

    Offers what the device uses of ``asyncio.subprocess.Process``.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        #: The kernel killed it because its cgroup ran out of memory.
        self.oom_killed = False
        #: Its template process ended and took it along (PR_SET_PDEATHSIG).
        self.with_template = False
        #: (stream, text) it left unread in its descriptors 1 and 2 when it died.
        self.last_words: list[tuple[str, str]] = []
        self._exited = asyncio.get_running_loop().create_future()

    def exited(self, returncode: int, oom_killed: bool = False) -> None:
        self.returncode = returncode
        self.oom_killed = oom_killed
        if not self._exited.done():
            self._exited.set_result(returncode)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class TemplateLauncher:
    def __init__(self, spec: LaunchSpec) -> None:
        self.spec = spec
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[tuple[ForkedProcess, socket.socket]]] = {}
        self.children: dict[int, ForkedProcess] = {}
        self.proc: asyncio.subprocess.Process | None = None
        self.control: socket.socket | None = None
        self.protections = Protections()
        self.uids: UidLease | None = None
        self._ready: asyncio.Future[Protections] | None = None
        #: What the template offers: {name, display_name, language, backend} per kernel.
        self.kernels: list[dict[str, str]] = []
        #: Called once a template that ended on its own was replaced by a new one.
        self.on_restarted: Callable[[], None] | None = None
        self.stopping = False
        self._restarting: asyncio.Task[None] | None = None
        self._delay = RESTART_DELAY
        self._started_at = 0.0

    def _lease_uids(self) -> UidLease:
        """The session uids of this device, held alone on this machine where workers get
        uids at all (root, sandbox not off): see :mod:`device.uids`."""
        spec = self.spec.sandbox_uids
        if self.spec.sandbox == "off" or os.geteuid() != 0:
            return UidLease(auto_range(0) if spec == "auto" else parse_uids(spec))
        held = lease(spec)
        log.info("device session uids %s (--sandbox-uids %s), held alone on this machine "
                 "(%s)", held.describe(), spec, LOCK_PATH)
        return held

    async def start(self) -> None:
        self.uids = self._lease_uids()
        await self._spawn()
        if not self.kernels:  # each was logged with why; a device that offers none serves none
            await self.stop()
            raise ConfigError(f"device can offer none of the kernels "
                              f"{self.spec.kernels or '(the default ones)'} (see why above); "
                              "give --kernels one it can run, such as python")
        summary = self.protections.summary()
        if self.protections.off and self.spec.sandbox == "require":
            await self.stop()
            raise ConfigError(f"--sandbox require, but this machine cannot give all of it: "
                              f"{summary}")
        (log.warning if self.protections.off and self.spec.sandbox != "off" else log.info)(
            "device %s", summary)
        self._log_budget()
        if self.protections.has("namespaces"):
            program = self.spec.init_program
            why = (f"{program} is missing or not executable by others; bin/cellbus builds "
                   "it where a C compiler is") if program else "no compiled init given"
            log.info("device namespace init: %s", self.protections.init or
                     f"Python ({why}; each session keeps about 2 MB more)")

    async def _spawn(self) -> None:
        """Start the template process and wait until it is ready."""
        assert self.uids is not None
        uids = self.uids
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [self.spec.python, "-P", "-m", "device.template", "--control-fd",
                str(theirs.fileno())]
        if self.spec.backend:
            argv += ["--backend", self.spec.backend]
        if self.spec.preload:
            argv += ["--preload", self.spec.preload]
        if self.spec.kernels:
            argv += ["--kernels", self.spec.kernels]
        argv += ["--sandbox", self.spec.sandbox, "--sandbox-uids", uids.describe(),
                 "--memory-budget", str(self.spec.memory_budget)]
        for path in self.spec.hide:
            argv += ["--hide", path]
        argv += ["--init-program", self.spec.init_program]
        self._ready = asyncio.get_running_loop().create_future()
        #: What the template said it imports (before it is ready), in words.
        self._loading = "the session runtime"
        env = template_environment(dict(os.environ))
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, pass_fds=(theirs.fileno(),), env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, start_new_session=True)
        finally:
            theirs.close()
        ours.setblocking(False)
        self.control = ours
        asyncio.get_running_loop().add_reader(ours.fileno(), self._readable)
        try:
            self.protections = await asyncio.wait_for(asyncio.shield(self._ready), SLOW_READY)
        except asyncio.TimeoutError:
            log.warning("device: its template process is not ready after %g s: it is "
                        "importing %s (a module that never finishes importing holds the "
                        "device here, up to %g s)", SLOW_READY, self._loading, READY_TIMEOUT)
            try:
                self.protections = await asyncio.wait_for(asyncio.shield(self._ready),
                                                          READY_TIMEOUT - SLOW_READY)
            except asyncio.TimeoutError:
                raise LaunchError(f"the template process did not report ready within "
                                  f"{READY_TIMEOUT:g} s: it was importing {self._loading}"
                                  ) from None
        self._started_at = time.monotonic()
        log.info("device template process %d started (preload: %s)", self.proc.pid,
                 self.spec.preload or "session runtime only")

    def _log_budget(self) -> None:
        budget, applied = self.spec.memory_budget, self.protections.memory_budget
        if applied:
            log.info("device memory budget of all sessions together: %.1f GiB "
                     "(--memory-budget)", applied / 2**30)
        elif budget:  # a warning unless the sandbox is off on purpose
            (log.info if self.spec.sandbox == "off" else log.warning)(
                "device memory budget (--memory-budget) NOT applied: it needs the sandbox's "
                "cgroups")

    def backend(self, kernel: str) -> str | None:
        """The backend spec the template runs ``kernel`` with."""
        return next((k["backend"] for k in self.kernels if k["name"] == kernel), None)

    async def fork(self, workdir: str, backend: str | None = None
                   ) -> tuple[ForkedProcess, socket.socket]:
        """A new worker in ``workdir`` running ``backend`` (a spec of :mod:`session.backends`;
        None: the template's default); returns its process and the overseer's end of its
        link. A template being started again is waited for (:data:`RESTART_WAIT`), also when
        it ended while it was asked (before the device saw it end)."""
        for attempt in (1, 2):
            if self._restarting is not None and not self.stopping and \
                    self._delay <= 2 * RESTART_DELAY:  # not a template that keeps ending
                try:  # a new template is on its way (the device's loop waits: no worker runs)
                    await asyncio.wait_for(asyncio.shield(self._restarting), RESTART_WAIT)
                except asyncio.TimeoutError:
                    pass
            try:
                return await self._fork(workdir, backend)
            except LaunchError:
                if attempt == 2 or self._restarting is None:
                    raise
        raise AssertionError("unreachable")

    async def _fork(self, workdir: str, backend: str | None
                    ) -> tuple[ForkedProcess, socket.socket]:
        if self.control is None or self.proc is None or self.proc.returncode is not None:
            raise LaunchError("the template process is not running")
        request_id = next(self.ids)
        future: asyncio.Future[tuple[ForkedProcess, socket.socket]] = (
            asyncio.get_running_loop().create_future())
        self.pending[request_id] = future
        try:
            self.control.send(msgpack.packb({"op": "fork", "id": request_id, "workdir": workdir,
                                             "limits": self.spec.limits.as_dict(),
                                             "backend": backend}))
            return await asyncio.wait_for(future, 30)
        except asyncio.TimeoutError:  # (an OSError too: first)
            raise LaunchError("the template did not fork a worker within 30 s") from None
        except OSError as e:  # it ended, and the device has not seen it yet
            raise LaunchError(f"the template process ended ({e})") from None
        finally:
            self.pending.pop(request_id, None)

    def _readable(self) -> None:
        assert self.control is not None
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.control, MAX_PACKET, 4)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data:
                self._template_gone()
                return
            try:
                self._handle(msgpack.unpackb(data), fds)
            except (ValueError, TypeError, KeyError) as e:
                log.error("device: bad record from the template: %s", e)
                for fd in fds:
                    os.close(fd)

    def _handle(self, record: dict[str, Any], fds: list[int]) -> None:
        op = record["op"]
        if op == "loading":
            self._loading = str(record.get("what"))
        elif op == "ready":
            self.kernels = [k for k in record.get("kernels", []) if "error" not in k]
            for failed in (k for k in record.get("kernels", []) if "error" in k):
                log.error("device cannot offer the kernel %r: %s", failed["name"],
                          failed["error"])
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(Protections.from_dict(record["protections"]))
        elif op == "forked":
            child = ForkedProcess(record["pid"])
            self.children[child.pid] = child
            link = socket.socket(fileno=fds[0])
            future = self.pending.get(record["id"])
            if future is None or future.done():
                link.close()
                child.kill()
            else:
                future.set_result((child, link))
        elif op == "output" and (dying := self.children.get(record["pid"])) is not None:
            dying.last_words.append((str(record["name"]), str(record["text"])))
        elif op == "exited":
            ended = self.children.pop(record["pid"], None)
            if ended is not None:
                ended.exited(record["returncode"], bool(record.get("oom")))
        elif op == "failed":
            future = self.pending.get(record["id"])
            if future is not None and not future.done():
                future.set_exception(LaunchError(f"fork failed: {record['error']}"))

    def _template_gone(self) -> None:
        ready = self._ready
        started = ready is not None and ready.done() and not ready.cancelled() \
            and ready.exception() is None
        if self.control is not None:
            asyncio.get_running_loop().remove_reader(self.control.fileno())
            self.control.close()
            self.control = None
        for future in self.pending.values():
            if not future.done():
                future.set_exception(LaunchError("the template process ended"))
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(LaunchError("the template process ended before it was "
                                                  "ready (see its error above)"))
        for child in self.children.values():
            child.with_template = True
            child.exited(-signal.SIGKILL)  # PR_SET_PDEATHSIG took them with it
        self.children.clear()
        if started and not self.stopping and self._restarting is None:
            self._restarting = asyncio.get_running_loop().create_task(
                self._restart(), name="template.restart")

    async def _restart(self) -> None:
        """Start a new template after one that was running ended on its own (see the module
        docstring), until one starts or the device stops."""
        try:
            if self.proc is not None:
                await self.proc.wait()
            quick = time.monotonic() - self._started_at < RESTART_STABLE
            self._delay = min(self._delay * 2, RESTART_MAX_DELAY) if quick else RESTART_DELAY
            log.error("device: the template process %s ended (status %s); no worker can start "
                      "until a new one is running, in %.1f s", self.proc and self.proc.pid,
                      self.proc and self.proc.returncode, self._delay)
            while not self.stopping:
                await asyncio.sleep(self._delay)
                try:
                    await self._spawn()
                except (LaunchError, OSError) as e:
                    self._delay = min(self._delay * 2, RESTART_MAX_DELAY)
                    log.error("device: a new template process did not start (%s); trying "
                              "again in %.1f s", e, self._delay)
                    continue
                if self.on_restarted is not None:
                    self.on_restarted()
                return
        finally:
            self._restarting = None

    async def stop(self) -> None:
        self.stopping = True
        if self._restarting is not None:
            self._restarting.cancel()
        if self.control is not None:
            asyncio.get_running_loop().remove_reader(self.control.fileno())
            self.control.close()
            self.control = None
        if self.proc is not None and self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.uids is not None:  # the template and its workers are gone: uids are free
            self.uids.release()

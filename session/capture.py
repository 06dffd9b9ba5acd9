"""Output capture for a worker: stdout and stderr become coalesced ``stream`` records.

Everything written to ``sys.stdout``/``sys.stderr`` (Python level) or to file descriptors 1
and 2 (subprocesses, C code, ``os.write``) ends up in one :class:`Coalescer`, which sends
what it holds ~5 ms after the first unsent write, at once when more than 64 KiB are waiting,
or when asked to flush. A line not ended yet waits up to 50 ms more for its end, so a
``print`` (which writes its text, then its newline) is one record even when the worker was
descheduled between the two writes; what comes before it on other lines is not held.
Python-level writes never pass through the descriptors, so their order is exactly the order
of the calls. :meth:`Capture.install` replaces the process's ``sys.stdin/stdout/stderr`` and
descriptors 0, 1 and 2; it touches nothing else.

A worker that dies takes its own reader threads along: what was still in the pipes then (C
code's last words before an abort or a segfault) is read by whoever else holds their read
ends (the device's template, :mod:`device.template`), and the reader threads leave it there
:data:`FD_READ_DELAY` before they take it. So that it follows what the worker
sent with no gap, the worker keeps a mark per descriptor in memory it shares with that
holder (:data:`Marks`): set before each read of the pipe, cleared only once everything read
from it is sent; a death with a mark set held bytes of its own, and the rest is left unsaid.
"""

from __future__ import annotations

import codecs
import fcntl
import io
import os
import select
import struct
import sys
import termios
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from .interrupts import main_thread_only

#: Seconds between the first unsent write and the send that carries it.
FLUSH_DELAY = 0.005
#: Seconds from the first unsent write that the end of an unfinished last line is waited for.
LINE_WAIT = 0.05
#: Characters waiting that trigger an immediate send.
FLUSH_SIZE = 64 * 1024
#: Seconds the reader of descriptors 1 and 2 leaves what was written there in the pipe
#: before it takes it: a worker that dies meanwhile (an abort right after C code's message)
#: leaves it to the template, which shows it (see below); read, it would die with the worker.
FD_READ_DELAY = 0.02
#: Bytes in such a pipe that are read at once, delay or not: a pipe holds 64 KiB, and a
#: writer of more (a subprocess's bulk output) would wait on a full pipe meanwhile.
FD_READ_AT = 16 * 1024
#: Seconds between two looks at how much a pipe holds while its reader waits.
FD_HOLD_STEP = 0.002
#: Largest text carried by one stream record (longer runs are split).
MAX_CHUNK = 1024 * 1024

Sink = Callable[[str, str], None]
#: Shared memory of one byte per stream (0: stdout, 1: stderr), see the module docstring.
Marks = Any


class Coalescer:
    """Buffers ``(stream name, text)`` writes in order and hands them to ``sink`` in runs."""

    def __init__(self, sink: Sink, delay: float = FLUSH_DELAY, size: int = FLUSH_SIZE) -> None:
        self._sink, self._delay, self._size_limit = sink, delay, size
        self._pending: list[tuple[str, list[str]]] = []
        self._size = 0
        self._deadline = 0.0
        self._line_deadline = 0.0  # until when an unfinished last line is held back
        self._held = False  # what is pending is such a line, held back
        self._lock = threading.Lock()  # guards _pending, _size, _deadline, _line_deadline, _held
        self._wake = threading.Condition(self._lock)
        self._send_lock = threading.Lock()     # one flush at a time, so runs stay in order
        #: Called after each send, under the send lock (clears the descriptors' marks).
        self.after_send: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._run, name="cellbus-flusher", daemon=True)
        self._thread.start()

    def write(self, name: str, text: str) -> None:
        if not text:
            return
        with self._lock:
            if self._pending and self._pending[-1][0] == name:
                self._pending[-1][1].append(text)
            else:
                self._pending.append((name, [text]))
            if self._size == 0:
                now = time.monotonic()
                self._deadline, self._line_deadline = now + self._delay, now + LINE_WAIT
                self._wake.notify()
            elif self._held and "\n" in text:  # the line held back ended: send it soon
                self._held = False
                self._deadline = min(self._deadline, time.monotonic() + self._delay)
                self._wake.notify()
            self._size += len(text)
            full = self._size >= self._size_limit
        if full:
            self.flush()

    def flush(self) -> None:
        """Send everything written so far, before returning."""
        self._send(hold_line=False)

    def _send(self, hold_line: bool) -> None:
        """Send what is pending; with ``hold_line``, keep back an unfinished last line
        until its :data:`LINE_WAIT` is over."""
        with self._send_lock:
            with self._lock:
                pending, self._pending, self._size, self._held = self._pending, [], 0, False
                if hold_line and pending and time.monotonic() < self._line_deadline:
                    name, parts = pending[-1]
                    text = "".join(parts)
                    cut = text.rfind("\n") + 1
                    if cut < len(text):
                        pending[-1:] = [(name, [text[:cut]])] if cut else []
                        self._pending, self._size = [(name, [text[cut:]])], len(text) - cut
                        self._held, self._deadline = True, self._line_deadline
            for name, parts in pending:
                text = "".join(parts)
                for start in range(0, len(text), MAX_CHUNK):
                    self._sink(name, text[start:start + MAX_CHUNK])
            if self.after_send is not None:
                self.after_send()

    def sending(self) -> threading.Lock:
        """The lock a send holds throughout (a send under way ends before it is taken)."""
        return self._send_lock

    @property
    def empty(self) -> bool:
        """Nothing written waits to be sent (a send under way has taken what it sends)."""
        return self._size == 0

    def _run(self) -> None:
        main_thread_only()
        while True:
            with self._lock:
                while not self._size or (wait := self._deadline - time.monotonic()) > 0:
                    self._wake.wait(wait if self._size else None)
            try:
                self._send(hold_line=True)
            except Exception:  # the sink reports its own failures; keep the flusher alive
                pass


class StreamWriter(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` replacement feeding a :class:`Coalescer`."""

    def __init__(self, name: str, coalescer: Coalescer, fd: int,
                 guard: AbstractContextManager[Any] | None = None,
                 before_write: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._name, self._coalescer, self._fd = name, coalescer, fd
        self._before_write = before_write
        self._guard: AbstractContextManager[Any] = guard if guard is not None else nullcontext()
        self.buffer = _BinaryWriter(self)

    @property
    def name(self) -> str:
        return f"<{self._name}>"

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "strict"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        """The captured descriptor, so ``subprocess.run(..., stdout=sys.stdout)`` works."""
        return self._fd

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        with self._guard:
            if self._before_write is not None:
                self._before_write()  # descriptor output written earlier goes first
            self._coalescer.write(self._name, s)
        return len(s)

    def flush(self) -> None:
        with self._guard:
            self._coalescer.flush()


class _BinaryWriter(io.RawIOBase):
    """``sys.stdout.buffer``: bytes decoded as UTF-8 (invalid bytes replaced)."""

    def __init__(self, text: StreamWriter) -> None:
        super().__init__()
        self._text = text
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._text.write(self._decoder.decode(data))
        return len(data)

    def flush(self) -> None:
        self._text.flush()


class NoStdin(io.TextIOBase):
    """``sys.stdin`` of a session: there is no one to type, so reading fails clearly."""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        raise OSError("this session has no standard input (input() is not supported)")

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        return self.read()


class _FdPipe:
    """Descriptor ``fd`` redirected into a pipe, read by a thread into the coalescer."""

    def __init__(self, fd: int, name: str, coalescer: Coalescer,
                 pipe: tuple[int, int] | None = None, marks: Marks = None,
                 mark_lock: threading.Lock | None = None) -> None:
        self.name, self._coalescer = name, coalescer
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._lock = threading.Lock()
        self._marks, self._mark = marks, fd - 1
        self._mark_lock = mark_lock or threading.Lock()
        r, w = pipe or os.pipe()
        os.dup2(w, fd)  # fd stays inheritable: subprocesses write into the pipe
        os.close(w)
        os.set_blocking(r, False)
        self._r = self.fileno = r
        threading.Thread(target=self._run, name=f"cellbus-fd{fd}", daemon=True).start()

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def drain(self) -> None:
        """Move everything now in the pipe to the coalescer (never blocks)."""
        with self._lock:
            while True:
                if self._marks is not None:
                    with self._mark_lock:  # see unmark
                        self._marks[self._mark] = 1
                try:
                    data = os.read(self._r, 65536)
                except BlockingIOError:
                    data = b""
                if not data:
                    self._settle()
                    return
                self._coalescer.write(self.name, self._decoder.decode(data))

    def end_characters(self) -> None:
        """What the decoder holds of a character not finished: a replacement character."""
        with self._lock:
            self._coalescer.write(self.name, self._decoder.decode(b"", final=True))

    def _settle(self) -> None:
        """At the end of a drain (under its lock): clear the mark if what it read is sent
        by now (no send is under way meanwhile), else the send that sends it will."""
        if self._marks is not None:
            with self._coalescer.sending(), self._mark_lock:
                if self._all_sent():
                    self._marks[self._mark] = 0

    def _all_sent(self) -> bool:
        """Nothing read waits unsent: not in the coalescer, nor a character's first bytes."""
        return self._coalescer.empty and not self._decoder.getstate()[0]

    def unmark(self) -> None:
        """After a send: clear the mark if nothing read from the pipe waits unsent. Under
        the mark lock, so a read that starts now sets the mark again after this."""
        if self._marks is None:
            return
        with self._mark_lock:
            if not self.busy and self._all_sent():
                self._marks[self._mark] = 0

    def _run(self) -> None:
        main_thread_only()
        poller = select.poll()
        poller.register(self._r, select.POLLIN)
        while True:
            events = poller.poll()
            if any(ev & (select.POLLHUP | select.POLLERR) and not ev & select.POLLIN
                   for _, ev in events):
                time.sleep(0.05)  # no writer left for now; a new one may appear
            else:
                self._hold()
            self.drain()

    def _hold(self) -> None:
        """Leave fresh output in the pipe up to :data:`FD_READ_DELAY`, or until it holds
        :data:`FD_READ_AT` bytes."""
        deadline = time.monotonic() + FD_READ_DELAY
        while time.monotonic() < deadline and _held_bytes(self._r) < FD_READ_AT:
            time.sleep(FD_HOLD_STEP)


def _held_bytes(fd: int) -> int:
    """Bytes waiting to be read in the pipe ``fd`` (``FIONREAD``); 0 if unknown."""
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])
    except OSError:
        return 0


class Capture:
    """The installed capture of one worker process."""

    def __init__(self, coalescer: Coalescer, pipes: list[_FdPipe]) -> None:
        self.coalescer = coalescer
        self._pipes = {pipe.fileno: pipe for pipe in pipes}
        self._poller = select.poll()
        for fd in self._pipes:
            self._poller.register(fd, select.POLLIN)
        self._poll_lock = threading.Lock()  # a poll object serves one thread at a time

    @classmethod
    def install(cls, sink: Sink, guard: AbstractContextManager[Any] | None = None,
                pipes: dict[int, tuple[int, int]] | None = None,
                marks: Marks = None) -> "Capture":
        """Redirect fds 0-2 and ``sys`` streams; returns the capture. Call once, at start.
        ``pipes`` gives the (read, write) ends to use for 1 and 2, whose read ends another
        process also holds, with its ``marks`` (see the module docstring)."""
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        coalescer = Coalescer(sink)
        given = pipes or {}
        mark_lock = threading.Lock()
        fd_pipes = [_FdPipe(fd, name, coalescer, given.get(fd), marks if given else None,
                            mark_lock) for fd, name in ((1, "stdout"), (2, "stderr"))]
        def unmark() -> None:
            for pipe in fd_pipes:
                pipe.unmark()
        coalescer.after_send = unmark
        capture = cls(coalescer, fd_pipes)
        sys.stdin = NoStdin()
        sys.stdout = StreamWriter("stdout", coalescer, 1, guard, capture.drain_fds)
        sys.stderr = StreamWriter("stderr", coalescer, 2, guard, capture.drain_fds)
        return capture

    def in_forked_child(self) -> None:
        """In a process user code forked: its reader threads are gone, so ``sys`` streams
        write straight to descriptors 1 and 2, whose pipes the worker still reads."""
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)

    def drain_fds(self) -> None:
        """Move descriptor output written so far into the coalescer.

        Cheap when there is none (one ``poll``), so every Python-level write calls it
        first: ``os.write(1, ...)`` followed by ``print()`` keeps its order."""
        with self._poll_lock:
            ready = {fd for fd, _ in self._poller.poll(0)}
        for fd, pipe in self._pipes.items():
            if fd in ready or pipe.busy:  # busy: its reader holds bytes not yet delivered
                pipe.drain()

    def flush(self, *, run_ended: bool = False) -> None:
        """Send all output written so far, including what C code still buffers in stdio.
        At the end of a run, bytes of a character never finished on a descriptor go as a
        replacement character too: left in its decoder, they began the next run's output."""
        _flush_c_stdio()
        self.drain_fds()
        if run_ended:
            for pipe in self._pipes.values():
                pipe.end_characters()
        self.coalescer.flush()


_libc_fflush: Callable[[Any], int] | None = None


def _flush_c_stdio() -> None:
    """``fflush(NULL)``: output a C extension printed may still sit in libc's buffers."""
    global _libc_fflush
    if _libc_fflush is None:
        try:
            import ctypes
            _libc_fflush = ctypes.CDLL(None).fflush
        except (ImportError, OSError, AttributeError):
            _libc_fflush = lambda _: 0  # noqa: E731
    _libc_fflush(None)

"""The log file of ``--log-file``: private to the node's user, as the store is.

A node's log names users, worksheets and sessions, and quotes what workers said; with the
file made by the process's umask (0644 as a rule) every account of the host could read it,
and so could session code wherever the file sits in a folder sessions see (``/opt``,
``/etc``). The file is made mode 0600, and so is each new one after logrotate moved the
last (``WatchedFileHandler`` reopens by name). A file that exists keeps the mode it has: an
operator's ``create 0640 root adm`` in logrotate, say. Every node sets its logging up here
(:func:`setup_logging`): to stderr, or to that file.
"""

from __future__ import annotations

import contextlib
import io
import logging.handlers
import os
import sys

#: The mode of a log file a node makes.
MODE = 0o600


class PrivateFileHandler(logging.handlers.WatchedFileHandler):
    """``WatchedFileHandler`` whose file, when it makes one, is ``MODE``."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                     MODE)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


def setup_logging(level: str = "INFO", *, tag: str = "", file: str | None = None) -> None:
    """Log to stderr, or to ``file`` (``--log-file``), at ``level``. ``tag`` names this
    process's node on each line, after the logger's name (``cellbus.device[gpu1]``), for
    nodes of which several log to one place (the devices of ``bin/cellbus up``, or of one
    host's journal). A file is reopened when it was moved (logrotate), and one the node
    makes is its user's alone (:mod:`protocol.logfile`); one that cannot be written stops the
    node in one line, status 2."""
    named = f"%(name)s[{tag.replace('%', '%%')}]" if tag else "%(name)s"
    handler: logging.Handler = logging.StreamHandler(sys.stderr)
    if file:
        try:
            handler = PrivateFileHandler(file, encoding="utf-8")
        except OSError as e:
            print(f"cellbus: cannot write the log file {file} (--log-file): {e.strerror}",
                  file=sys.stderr)
            sys.exit(2)
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format=f"%(asctime)s {named} %(levelname)s %(message)s",
                        handlers=[handler])


def reopen_log_file() -> str | None:
    """Reopen the ``--log-file`` this process logs to, by its name, for the SIGHUP that a
    logrotate ``postrotate`` (or an operator) sends; its path, or None when it logs to
    stderr (its terminal or journal: there a SIGHUP is the terminal closing)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrivateFileHandler):
            with handler.lock or contextlib.nullcontext():
                if handler.stream is not None:
                    handler.stream.close()
                handler.stream = handler._open()
            return handler.baseFilename
    return None

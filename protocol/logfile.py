"""The log file of ``--log-file``: private to the node's user, as the store is.

A node's log names users, worksheets and sessions, and quotes what workers said; with the
file made by the process's umask (0644 as a rule) every account of the host could read it,
and so could session code wherever the file sits in a folder sessions see (``/opt``,
``/etc``). The file is made mode 0600, and so is each new one after logrotate moved the
last (``WatchedFileHandler`` reopens by name). A file that exists keeps the mode it has: an
operator's ``create 0640 root adm`` in logrotate, say.
"""

from __future__ import annotations

import io
import logging.handlers
import os

#: The mode of a log file a node makes.
MODE = 0o600


class PrivateFileHandler(logging.handlers.WatchedFileHandler):
    """``WatchedFileHandler`` whose file, when it makes one, is ``MODE``."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                     MODE)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)

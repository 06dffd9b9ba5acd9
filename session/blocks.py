"""The block API (seed 000, step 10): output blocks, and files announced when a block closes.

Every execution runs inside a block; ``display()`` and figures start a new one. When a block
closes, the files that were created or changed in the session's working directory since it
opened are announced as ``display_data`` (content in ``buffers[0]`` up to a size limit).

The scan is deliberately paranoid, because session code controls the directory: it walks by
directory descriptor (``os.scandir(fd)`` and ``openat`` with ``O_NOFOLLOW``), never follows a
symlink, reads only regular files, skips names starting with ``.``, and stops after
:data:`MAX_ENTRIES` entries. Reads only below the working directory; writes nothing.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from collections.abc import Callable

from protocol.msgtypes import FILE_MIME

from .backend import DEFAULT_MAX_FILE_SIZE, Output

#: Directory entries looked at per scan, at most.
MAX_ENTRIES = 5000
#: Directory depth below the working directory that is scanned.
MAX_DEPTH = 16
#: File bytes sent per block, at most; later files are announced without content.
MAX_BLOCK_BYTES = 48 * 1024 * 1024

Snapshot = dict[str, tuple[int, int]]  # relative name -> (mtime_ns, size)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def scan(root: str, max_entries: int = MAX_ENTRIES) -> Snapshot:
    """``{relative name: (mtime_ns, size)}`` of the regular files below ``root``."""
    found: Snapshot = {}
    budget = max_entries
    try:
        top = os.open(root, _DIR_FLAGS)
    except OSError:
        return found
    stack: list[tuple[int, str, int]] = [(top, "", 0)]
    while stack:
        fd, prefix, depth = stack.pop()
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    budget -= 1
                    if budget < 0:
                        break
                    if entry.name.startswith("."):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    rel = prefix + entry.name
                    if stat.S_ISREG(st.st_mode):
                        found[rel] = (st.st_mtime_ns, st.st_size)
                    elif stat.S_ISDIR(st.st_mode) and depth < MAX_DEPTH:
                        try:
                            sub = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                        except OSError:
                            continue
                        stack.append((sub, rel + "/", depth + 1))
        except OSError:
            pass
        finally:
            os.close(fd)
        if budget < 0:
            break
    for fd, _, _ in stack:
        os.close(fd)
    return found


def read_file(root: str, rel: str, limit: int) -> bytes | None:
    """The bytes of regular file ``rel`` below ``root`` (``None`` when over ``limit`` bytes).

    Raises ``OSError`` if it is gone, is not a regular file, or a path component is a link.
    """
    parts = rel.split("/")
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = sub
        ffd = os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)
    try:
        if not stat.S_ISREG(os.fstat(ffd).st_mode):
            raise OSError(f"{rel} is not a regular file")
        chunks, have = [], 0
        while have <= limit:
            chunk = os.read(ffd, min(limit + 1 - have, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            have += len(chunk)
    finally:
        os.close(ffd)
    return None if have > limit else b"".join(chunks)


class BlockApi:
    """``block_api`` in a session's namespace: ``new_block()`` and ``close()``.

    ``before_close`` runs while the block is still open, just before it closes (the Python
    backend uses it to show figures that are still open).
    """

    def __init__(self, out: Output, root: str, *, max_file_size: int = DEFAULT_MAX_FILE_SIZE,
                 max_entries: int = MAX_ENTRIES,
                 before_close: Callable[[], None] | None = None) -> None:
        self._out, self._root = out, os.path.abspath(root)
        self._max_file_size, self._max_entries = max_file_size, max_entries
        self._before_close = before_close
        self._snapshot: Snapshot | None = None  # None: no block is open

    @property
    def is_open(self) -> bool:
        return self._snapshot is not None

    def new_block(self) -> None:
        """Close the open block, if any (announcing its files), and open a new one."""
        if self._snapshot is not None:
            self._announce_changes()
        else:
            self._snapshot = scan(self._root, self._max_entries)

    def close(self) -> None:
        """Close the open block: show what is still pending, announce changed files."""
        if self._snapshot is None:
            return
        try:
            if self._before_close is not None:
                self._before_close()
        finally:
            try:
                self._announce_changes()
            finally:
                self._snapshot = None

    def _announce_changes(self) -> None:
        """Announce files changed since the snapshot, then take a new snapshot."""
        before = self._snapshot or {}
        now = scan(self._root, self._max_entries)
        self._snapshot = now
        changed = sorted((rel for rel, sig in now.items() if before.get(rel) != sig),
                         key=lambda rel: (now[rel][0], rel))
        budget = MAX_BLOCK_BYTES
        for rel in changed:
            budget -= self._announce(rel, min(self._max_file_size, budget))

    def _announce(self, rel: str, limit: int) -> int:
        """Send one file announcement; returns the number of content bytes sent."""
        try:
            content = read_file(self._root, rel, limit) if limit >= 0 else None
        except OSError:
            return 0  # vanished or replaced by something that is not a plain file
        size = len(content) if content is not None else self._snapshot_size(rel)
        info: dict[str, object] = {
            "name": rel, "size": size,
            "mime": mimetypes.guess_type(rel)[0] or "application/octet-stream",
        }
        if content is None:
            info["too_large"] = True
        self._out.display({"text/plain": rel, FILE_MIME: info}, {},
                          buffers=[content] if content is not None else None)
        return len(content) if content is not None else 0

    def _snapshot_size(self, rel: str) -> int:
        return (self._snapshot or {}).get(rel, (0, 0))[1]

"""The fold: one request's iopub messages become the cell's output blocks.

A block is what ``GET .../update`` shows under ``"output"``: a dict with ``type``, ``order``
(0, 1, 2 ... in creation order, never reused, even after ``clear_output``), ``state``
(``"open"`` or ``"closed"``), ``seq`` (of the message that last changed it) and keys of its
type. Ids are ``f"{name}_{order}"``: ``stdout_0``, ``stderr_1``, ``image_2``, ``file_3``,
``html_4``, ``text_5``, ``error_6``, ``interact_7``, ``input_8``.

An ``input_request`` becomes an ``input`` block (``prompt``, ``password``) that stays open
while the session waits for the answer: whatever the run says next (the echoed answer, an
error, the end) closes it, so a page that reloads shows an input box only for a prompt still
pending.

:class:`CellOutput` is fed ``(seq, message)`` pairs, incrementally by the broker or all at
once by :func:`fold`; both give the same blocks. Replayed messages (``seq`` not above the
last one applied) change nothing, and malformed ones are ignored: folding never raises on
bad input. Output that arrives between ``interact_start`` and ``interact_end`` folds into
the interact block's ``output`` by the same rules, in a nested :class:`CellOutput`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .msgtypes import (CLEAR_OUTPUT, DISPLAY_DATA, ERROR, EXECUTE_INPUT, EXECUTE_REPLY,
                       EXECUTE_RESULT, FILE_MIME, INPUT_REQUEST, INTERACT_END, INTERACT_START,
                       STATUS, STREAM, UPDATE_DISPLAY_DATA)

Block = dict[str, Any]
FileUrl = Callable[[int, str], str]

#: Image types shown as images, richest first; the value is base64 (svg: the XML text).
IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
#: Text types shown as text, richest first (the block keeps markdown and latex as source;
#: the browser renders them: gateway/static/cellbus/helpers.js and math.js).
TEXT_MIMES = ("text/markdown", "text/latex", "text/plain")
STREAM_NAMES = ("stdout", "stderr")  # a tuple: `in` must not hash unhashable input


class CellOutput:
    """The output blocks of one cell evaluation, folded from its messages.

    :param file_url: builds a file block's ``url`` from ``(seq, name)``; without it, file
        blocks have no ``url``.
    """

    def __init__(self, file_url: FileUrl | None = None) -> None:
        self.file_url = file_url
        #: The last seq applied (0 before any message).
        self.seq = 0
        self._blocks: dict[str, Block] = {}
        self._inner: dict[str, CellOutput] = {}  # interact block id -> its output
        self._order = 0
        self._open: str | None = None  # the open text or interact block
        #: Text of the open text block not yet joined into its ``content`` (see _stream).
        self._tail: list[str] = []
        self._pending_clear = False   # clear_output(wait=True) seen, not yet done
        self._reset = 0               # seq at which blocks were last removed
        self._changed = 0             # seq of the last visible change here
        #: What the execution used, from its ``execute_reply``'s ``metadata.usage``.
        self.usage: dict[str, Any] | None = None
        #: The run's execution number: its ``execute_input``'s, then its ``execute_reply``'s
        #: (a run stopped before its reply keeps the first).
        self.execution_count: int | None = None
        #: Whether the run was aborted (its execute_reply's status): not run, because a
        #: request queued before it failed with ``stop_on_error`` (device/aborts.py).
        self.aborted = False

    # -- reading ----------------------------------------------------------------------------

    @property
    def changed(self) -> int:
        """The seq of the last visible change, nested interact output included (0: none)."""
        return max([self._changed, *(inner.changed for inner in self._inner.values())])

    def blocks(self, since: int = 0) -> dict[str, Block]:
        """Copies of the blocks changed after ``since``, each whole; ``since=0``: all."""
        self._join_tail()
        out: dict[str, Block] = {}
        for bid, block in self._blocks.items():
            inner = self._inner.get(bid)
            seq = block["seq"] if inner is None else max(block["seq"], inner.changed)
            if seq > since:
                out[bid] = dict(block, seq=seq)
                if inner is not None:
                    out[bid]["output"] = inner.blocks()
        return out

    def reset_after(self, since: int) -> bool:
        """True if blocks were removed after ``since``: older output must be replaced whole."""
        return self._reset > since

    # -- writing ----------------------------------------------------------------------------

    def apply(self, seq: int, msg: dict[str, Any]) -> bool:
        """Fold one message in; True if anything visible changed."""
        if type(seq) is not int or seq <= self.seq or not isinstance(msg, dict):
            return False
        msg_type = msg.get("msg_type")
        if not isinstance(msg_type, str):
            header = msg.get("header")
            msg_type = header.get("msg_type") if isinstance(header, dict) else None
        content = msg.get("content")
        if not isinstance(msg_type, str) or not isinstance(content, dict):
            self.seq = seq
            return False
        if msg_type == EXECUTE_REPLY and isinstance(metadata := msg.get("metadata"), dict) \
                and isinstance(metadata.get("usage"), dict):
            self.usage = metadata["usage"]
        if msg_type == EXECUTE_REPLY:
            self.aborted = content.get("status") == "aborted"
        if msg_type in (EXECUTE_INPUT, EXECUTE_REPLY) \
                and type(count := content.get("execution_count")) is int:
            self.execution_count = count
        return self._apply(seq, msg_type, content)

    def shows_interact(self, interact_id: str) -> bool:
        """Whether a block here (or in an interact's output) is the interact ``interact_id``:
        the broker runs an ``interact_request`` only for one its cell shows, since a run of
        any other would fold into no block and its user would see nothing."""
        return any(block["type"] == "interact" and block["interact_id"] == interact_id
                   for block in self._blocks.values()) or any(
            nested.shows_interact(interact_id) for nested in self._inner.values())

    def replace_interact_output(self, interact_id: str, seq: int, inner: CellOutput) -> bool:
        """Show ``inner`` (a re-run's output, folded by the caller) as the output of the
        interact ``interact_id``; later changes to ``inner`` show through. False if unknown.
        """
        for bid in reversed(self._blocks):
            block = self._blocks[bid]
            if block["type"] == "interact" and block["interact_id"] == interact_id:
                self._inner[bid] = inner
                block["seq"] = max(block["seq"], seq)
                self._changed = max(self._changed, seq)
                return True
        return any(nested.replace_interact_output(interact_id, seq, inner)
                   for nested in self._inner.values())

    def _apply(self, seq: int, msg_type: str, content: dict[str, Any]) -> bool:
        self.seq = max(self.seq, seq)
        changed = self._dispatch(seq, msg_type, content)
        if changed:
            self._changed = seq
        return changed

    def _dispatch(self, seq: int, msg_type: str, content: dict[str, Any]) -> bool:
        if msg_type == EXECUTE_REPLY or (
                msg_type == STATUS and content.get("execution_state") == "idle"):
            return self._close(seq)
        inner = self._open_interact()
        if inner is not None:
            if msg_type == INTERACT_END and inner._open_interact() is None:
                return self._close(seq)
            return inner._apply(seq, msg_type, content)
        if msg_type == STREAM:
            return self._stream(seq, content)
        if msg_type in (DISPLAY_DATA, UPDATE_DISPLAY_DATA, EXECUTE_RESULT):  # an update: a display
            block = self._rich(seq, content, "result" if msg_type == EXECUTE_RESULT else "display")
            return block is not None and self._add(seq, *block)
        if msg_type == ERROR:
            return self._error(seq, content)
        if msg_type == CLEAR_OUTPUT:
            wait = content.get("wait", False)
            if not isinstance(wait, bool):
                return False
            if wait:
                self._pending_clear = True
                return False
            return self._clear(seq)
        if msg_type == INTERACT_START:
            return self._interact_start(seq, content)
        if msg_type == INPUT_REQUEST:
            return self._input_request(seq, content)
        return False

    # -- message types ----------------------------------------------------------------------

    def _stream(self, seq: int, content: dict[str, Any]) -> bool:
        name, text = content.get("name"), content.get("text")
        if name not in STREAM_NAMES or not isinstance(text, str) or not text:
            return False
        self._clear_if_pending(seq)
        block = self._blocks.get(self._open) if self._open is not None else None
        if block is not None and block["type"] == "text" and block.get("stream") == name:
            # Joined when read or closed: ``content += text`` copied the whole text so far
            # for every message, so a cell printing 8 MiB in 10 KB pieces made the broker
            # copy gigabytes, its loop held for seconds and every user's cell waiting.
            self._tail.append(text)
            block["seq"] = seq
            return True
        return self._add(seq, name, {"type": "text", "stream": name, "content": text},
                         state="open")

    def _rich(self, seq: int, content: dict[str, Any], kind: str) -> tuple[str, Block] | None:
        """``(id prefix, block)`` for the richest usable representation in a mime bundle."""
        data = content.get("data")
        if not isinstance(data, dict):
            return None
        ref = data.get(FILE_MIME)
        if (isinstance(ref, dict) and isinstance(ref.get("name"), str)
                and type(ref.get("size")) is int and isinstance(ref.get("mime"), str)):
            block: Block = {"type": "file", "name": ref["name"], "size": ref["size"],
                            "mime": ref["mime"]}
            if ref.get("too_large") is True:
                block["too_large"] = True
            elif self.file_url is not None:
                block["url"] = self.file_url(seq, ref["name"])
            return "file", block
        for mime in IMAGE_MIMES:
            if isinstance(data.get(mime), str):
                return "image", {"type": "image", "mime": mime, "data": data[mime]}
        if isinstance(data.get("text/html"), str):
            return "html", {"type": "html", "content": data["text/html"]}
        for mime in TEXT_MIMES:
            if isinstance(data.get(mime), str):
                block = {"type": "text", "stream": kind, "content": data[mime]}
                if mime != "text/plain":
                    block["mime"] = mime
                # LaTeX that the browser's KaTeX cannot show falls back to the repr.
                if mime == "text/latex" and isinstance(data.get("text/plain"), str):
                    block["plain"] = data["text/plain"]
                return "text", block
        return None

    def _error(self, seq: int, content: dict[str, Any]) -> bool:
        ename, evalue = content.get("ename"), content.get("evalue")
        traceback = content.get("traceback", [])
        if (not isinstance(ename, str) or not isinstance(evalue, str)
                or not isinstance(traceback, list)
                or not all(isinstance(line, str) for line in traceback)):
            return False
        return self._add(seq, "error", {"type": "error", "ename": ename, "evalue": evalue,
                                        "traceback": list(traceback)})

    def _interact_start(self, seq: int, content: dict[str, Any]) -> bool:
        interact_id, controls = content.get("interact_id"), content.get("controls", {})
        if not isinstance(interact_id, str) or not isinstance(controls, dict):
            return False
        layout = content.get("layout", list(controls))
        if not isinstance(layout, list):
            return False
        self._add(seq, "interact", {"type": "interact", "interact_id": interact_id,
                                    "controls": dict(controls), "layout": list(layout),
                                    "auto_update": content.get("auto_update") is not False},
                  state="open")
        self._inner[f"interact_{self._order - 1}"] = CellOutput(self.file_url)
        return True

    def _input_request(self, seq: int, content: dict[str, Any]) -> bool:
        prompt, password = content.get("prompt", ""), content.get("password", False)
        if not isinstance(prompt, str) or not isinstance(password, bool):
            return False
        return self._add(seq, "input", {"type": "input", "prompt": prompt,
                                        "password": password}, state="open")

    # -- block bookkeeping ------------------------------------------------------------------

    def _open_interact(self) -> CellOutput | None:
        """The nested output that the open interact block collects, if one is open."""
        return self._inner.get(self._open) if self._open is not None else None

    def _add(self, seq: int, prefix: str, block: Block, state: str = "closed") -> bool:
        """Close the open block (after a pending clear), then add ``block``."""
        self._clear_if_pending(seq)
        self._close(seq)
        bid = f"{prefix}_{self._order}"
        self._blocks[bid] = {**block, "order": self._order, "state": state, "seq": seq}
        self._order += 1
        if state == "open":
            self._open = bid
        return True

    def _join_tail(self) -> None:
        """Put the text kept in :attr:`_tail` into the open block's ``content``, once."""
        if self._tail and self._open is not None:
            block = self._blocks[self._open]
            block["content"] = "".join([block["content"], *self._tail])
        self._tail.clear()

    def _close(self, seq: int) -> bool:
        """Close the open block (and what an open interact holds); True if one was open."""
        if self._open is None:
            return False
        self._join_tail()
        inner = self._open_interact()
        if inner is not None and inner._close(seq):
            inner._changed = seq
        block = self._blocks[self._open]
        block["state"], block["seq"] = "closed", seq
        self._open = None
        return True

    def _clear_if_pending(self, seq: int) -> None:
        if self._pending_clear:
            self._clear(seq)

    def _clear(self, seq: int) -> bool:
        """Remove every block (clear_output); True if there were any."""
        self._pending_clear = False
        self._tail.clear()
        if not self._blocks:
            return False
        self._blocks.clear()
        self._inner.clear()
        self._open = None
        self._reset = seq
        return True


def fold(messages: Iterable[tuple[int, dict[str, Any]]],
         file_url: FileUrl | None = None) -> CellOutput:
    """Fold ``(seq, message)`` pairs from scratch; items that are not pairs are skipped."""
    out = CellOutput(file_url)
    for item in messages:
        if isinstance(item, (tuple, list)) and len(item) == 2:
            out.apply(item[0], item[1])
    return out

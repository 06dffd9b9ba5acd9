"""``worksheet_notebook_request``: a worksheet as a Jupyter notebook (nbformat 4), for
``GET /home/U/W/notebook.ipynb``.

The cells are the worksheet's layout (:mod:`broker.layouts`) in order, or, for a worksheet
whose page never saved one, its cells from the store in cell-id order. A code cell's outputs
are the stored Jupyter messages of its latest run, taken as they are (not the folded blocks
of ``/update``): ``stream`` (consecutive ones of a stream joined, as Jupyter keeps them),
``display_data`` (an ``update_display_data`` as one more) and ``execute_result`` with their
MIME bundles, ``error``; a
``clear_output`` clears what came before it (``wait``: at the next output), as in Jupyter.
What has no place in a notebook is left out: a file's reference (its ``text/plain``, the
name, stays), interact controls (the output of the interact's first run stays), prompts.
The notebook's kernelspec is the kernel of the worksheet's latest run, as the devices
describe it; the built-in Python session is Jupyter's ``python3``.

The reply is the download itself: the notebook's JSON, made on a thread, as one buffer, and
its length and SHA-256 in the signed content (a bus message's signature covers no buffers).
Packing a notebook of tens of MB into the reply's content held the broker's loop for a tenth
of a second each, the gateway's for longer (unpacking it, then ``json.dumps``), and ten
downloads at once stopped every worksheet's requests for seconds. Measuring the outputs read
(for :data:`MAX_BYTES`) and making the notebook of them run on a thread as well. Notebooks
are also built one at a time (each holds its cells' output in memory), with at most
:data:`WAITING` more waiting; past that a download is refused with 503 and Retry-After. The
download comes to the gateway on its connection for big answers (gateway/bus.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from protocol import msgtypes as mt
from protocol.counts import counted
from protocol.kernels import DEFAULT_KERNEL, kernel_of
from protocol.turns import Turn
from protocol.wire import DEFAULT_MAX_FRAME_SIZE, Message

from .layouts import CLEARED, HIDDEN, cells_with_runs
from .outputcap import message_size
from .placement import DeviceTable
from .refusal import Address, Refused, Reply
from .store import Request, Store

#: The Jupyter kernelspec a cellbus kernel is opened with in Jupyter, where the names differ.
JUPYTER_NAMES = {DEFAULT_KERNEL: "python3"}
#: Bytes of code and stored output one notebook may hold. Its reply to the gateway is one
#: frame, which the gateway takes up to DEFAULT_MAX_FRAME_SIZE (64 MiB); a bigger one was
#: built whole (a 100 MB notebook: 460 MB of broker memory), dropped by the gateway as
#: oversize, and the client got "the broker did not answer" 10 s later, on every try. The
#: rest is room for what nbformat adds around the outputs.
MAX_BYTES = DEFAULT_MAX_FRAME_SIZE * 3 // 4
#: Downloads that wait while another notebook is built; more are refused (503).
WAITING = 4
#: Seconds a refused download is told to wait.
RETRY_AFTER = 2
#: What nbformat 4.5 allows as a cell id.
CELL_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
Output = dict[str, Any]


def notebook(cells: list[dict[str, Any]], kernel: dict[str, str],
             address: Address) -> dict[str, Any]:
    """The nbformat 4.5 notebook of ``cells`` ({id, type, code, messages: the latest run's
    stored messages, outputs_hidden?}) for ``kernel`` ({name, display_name, language})."""
    out: list[dict[str, Any]] = []
    used: set[str] = set()
    for n, cell in enumerate(cells, 1):
        cid = cell["id"] if CELL_ID.fullmatch(cell["id"]) else f"cell-{n}"
        cid = cid if cid not in used else f"cell-{n}-{len(used)}"
        used.add(cid)
        if cell["type"] == "markdown":
            out.append({"cell_type": "markdown", "id": cid, "metadata": {},
                        "source": cell["code"]})
            continue
        outputs, count = jupyter_outputs(cell["messages"])
        # hidden on the page: as JupyterLab writes a collapsed output (and the classic one)
        hidden = {"collapsed": True, "jupyter": {"outputs_hidden": True}} \
            if cell.get(HIDDEN) else {}
        out.append({"cell_type": "code", "id": cid, "metadata": hidden, "source": cell["code"],
                    "outputs": outputs,
                    "execution_count": count if counted(cell["code"]) else None})
    name = kernel["name"]
    return {"nbformat": 4, "nbformat_minor": 5, "cells": out, "metadata": {
        "kernelspec": {"name": JUPYTER_NAMES.get(name, name),
                       "display_name": kernel["display_name"], "language": kernel["language"]},
        "language_info": {"name": kernel["language"]},
        "cellbus": {"user": address[0], "worksheet": address[1], "kernel": name}}}


def jupyter_outputs(messages: Iterable[Message]) -> tuple[list[Output], int | None]:
    """A run's stored messages as a code cell's ``outputs`` and ``execution_count``."""
    outputs: list[Output] = []
    count: int | None = None
    clear_next = False
    for msg in messages:
        kind, content = msg.get("msg_type"), msg.get("content")
        if not isinstance(content, dict):
            continue
        if kind in (mt.EXECUTE_INPUT, mt.EXECUTE_RESULT) and type(
                content.get("execution_count")) is int:
            count = content["execution_count"]
        if kind == mt.CLEAR_OUTPUT:
            if content.get("wait"):
                clear_next = True
            else:
                outputs.clear()
            continue
        output = _output(kind, content, count)
        if output is None:
            continue
        if clear_next:
            outputs.clear()
            clear_next = False
        last = outputs[-1] if outputs else None
        if (output["output_type"] == "stream" and last is not None
                and last["output_type"] == "stream" and last["name"] == output["name"]):
            last["text"] += output["text"]
        else:
            outputs.append(output)
    return outputs, count


def _output(kind: Any, content: dict[str, Any], count: int | None) -> Output | None:
    """One Jupyter output of a message, or None for a message that is none (or malformed)."""
    if kind == mt.STREAM:
        name, text = content.get("name"), content.get("text")
        if name in ("stdout", "stderr") and isinstance(text, str):
            return {"output_type": "stream", "name": name, "text": text}
        return None
    if kind in (mt.DISPLAY_DATA, mt.UPDATE_DISPLAY_DATA, mt.EXECUTE_RESULT):
        data = _bundle(content.get("data"))
        if not data:
            return None
        metadata = content.get("metadata")
        output = {"output_type": mt.DISPLAY_DATA if kind == mt.UPDATE_DISPLAY_DATA else kind,
                  "data": data,
                  "metadata": metadata if isinstance(metadata, dict) else {}}
        if kind == mt.EXECUTE_RESULT:
            output["execution_count"] = count
        return output
    if kind == mt.ERROR:
        trace = content.get("traceback")
        return {"output_type": "error", "ename": str(content.get("ename", "")),
                "evalue": str(content.get("evalue", "")),
                "traceback": [str(line) for line in trace] if isinstance(trace, list) else []}
    return None


def _bundle(data: Any) -> dict[str, Any]:
    """A MIME bundle as nbformat takes it: text values, JSON values for JSON types only;
    cellbus's own file reference left out."""
    if not isinstance(data, dict):
        return {}
    return {mime: value for mime, value in data.items()
            if isinstance(mime, str) and "/" in mime and mime != mt.FILE_MIME
            and (isinstance(value, str) or mime.endswith("json"))}


def encoded(book: dict[str, Any]) -> tuple[bytes, str]:
    """The notebook's JSON as a download has it, and its SHA-256 (hex)."""
    body = json.dumps(book, indent=1, ensure_ascii=False).encode()
    return body, hashlib.sha256(body).hexdigest()


def output_size(messages: list[Message]) -> int:
    """Bytes of a run's stored messages, as the store packs them: on a thread, as the
    notebook is made and encoded (the broker's loop packed 7 MB of them a download)."""
    return sum(message_size(m) for m in messages)


def cell_order(cell_id: str) -> tuple[int, int, str]:
    """Cell ids in order: numbers by value (2 before 10), then the others by name."""
    return (0, int(cell_id), "") if cell_id.isdigit() else (1, 0, cell_id)


class Notebooks:
    """The broker's ``worksheet_notebook_request`` handler (wired in
    :class:`broker.intake.Intake`): a read, sent to no device."""

    def __init__(self, store: Store, devices: DeviceTable, *,
                 max_bytes: int = MAX_BYTES) -> None:
        self.store, self.devices, self.max_bytes = store, devices, max_bytes
        self._turn = Turn(WAITING)  # one notebook built at a time

    async def get(self, msg: Message, address: Address) -> Reply:
        """``({"bytes", "sha256"}, [the notebook's JSON])``; see the module docstring."""
        if self._turn.full:
            raise Refused(503, f"the broker has {self._turn.waiting} notebook downloads under "
                               f"way already; retry in {RETRY_AFTER} s", retry_after=RETRY_AFTER)
        async with self._turn.take():
            book = await self.build(address)
            body, digest = await asyncio.to_thread(encoded, book)
        if len(body) > DEFAULT_MAX_FRAME_SIZE:  # JSON escapes (control characters) grow it
            raise self._too_big(address[1])
        return {"bytes": len(body), "sha256": digest}, [body]

    async def build(self, address: Address) -> dict[str, Any]:
        """The worksheet's notebook, as a dict (413 past :attr:`max_bytes`)."""
        user, worksheet = address[:2]
        layout = await self.store.get_layout(user, worksheet)
        if layout is None:
            ids = sorted(await cells_with_runs(self.store, user, worksheet), key=cell_order)
            layout = [{"id": cid, "type": "code", "code": None} for cid in ids]
        cells, latest, size = [], None, 0
        for entry in layout:
            request = None
            if entry["type"] == "code":
                request = await self.store.cell_request(user, worksheet, entry["id"])
            if request is not None and (latest is None or request.created > latest.created):
                latest = request
            # its output cleared on the page: none, and no number (JupyterLab's Clear
            # Outputs saves execution_count null); a later run's shows
            cleared = request is not None and entry.get(CLEARED) == request.msg_id
            cell = {"id": entry["id"], "type": entry["type"], HIDDEN: entry.get(HIDDEN, False),
                    "code": entry["code"] if entry["code"] is not None
                    else request.input if request is not None else "",
                    "messages": [] if cleared else await self._run(request)}
            size += len(cell["code"]) + await asyncio.to_thread(output_size, cell["messages"])
            if size > self.max_bytes:  # refused as soon as it is known: nothing more is read
                raise self._too_big(worksheet)
            cells.append(cell)
        return await asyncio.to_thread(notebook, cells, self._kernel(latest), address)

    def _too_big(self, worksheet: str) -> Refused:
        return Refused(413, f"the notebook of worksheet {worksheet} is over "
                            f"{self.max_bytes // 2**20} MiB, the most one download may hold; "
                            "make the output of its biggest cells smaller (run them again) "
                            "and download it again")

    async def _run(self, request: Request | None) -> list[Message]:
        """The stored messages of ``request``'s run, in seq order (none: never ran)."""
        if request is None:
            return []
        return [m for _, m in await self.store.messages(request.session,
                                                        parent=request.msg_id)]

    def _kernel(self, latest: Request | None) -> dict[str, str]:
        """{name, display_name, language} of the kernel ``latest`` ran in."""
        name = kernel_of(latest.message["metadata"]) if latest is not None else DEFAULT_KERNEL
        known = self.devices.known_kernels().get(name)
        if known is not None:
            return {"name": name, "display_name": known.get("display_name") or name,
                    "language": known.get("language") or ""}
        python = name == DEFAULT_KERNEL
        return {"name": name, "display_name": "Python 3" if python else name,
                "language": "python" if python else ""}

"""The broker's answers to gateways: accept work, and serve cells' state from the store.

Every request names a cell in ``metadata["cellbus"]`` (user, worksheet, cell_id), except the
few in ``GLOBAL`` (such as ``broker_status_request``), and gets exactly one reply (types in
``protocol.msgtypes``). Requests of one worksheet that change it are handled one at a time,
in arrival order, so its session is created once and its work reaches the device in order;
reads (``READS``) and other worksheets proceed concurrently (and writes share group commits).

A request that needs a new session while every live device is full is refused with 503 (see
:mod:`broker.capacity`); with no device at all it is stored and waits, as always.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from protocol import msgtypes as mt
from protocol.kernels import KERNELS_REPLY, KERNELS_REQUEST
from protocol.requests import BEHIND
from protocol.wire import Message, Session

from . import asked
from .auth import Auth
from .budget import stored_size
from .cells import Cells
from .comms import COMM_IDS, Comms
from .control import Control
from .deletion import Deletion
from .dispatch import Dispatch, NoRoom
from .interacts import Interacts
from .jupyter import JupyterKernels
from .kernels import Kernels
from .layouts import Layouts
from .locks import WorksheetLocks
from .notebook import Notebooks
from .metrics import BrokerMetrics
from .outputcap import message_size
from .permalinks import Permalinks
from .prompts import Prompts
from .quotas import Quotas
from .refusal import STORE_RETRY_AFTER, Address, Refused, Reply, cell_address
from .sessions import OpenSessions
from .store import (EXECUTE_REQUEST, OPEN, DuplicateRequest, InvalidTransition,
                    Request, SessionRecord, Store, StoreError, StoreFull, StoreUnwritable,
                    UnknownRequest)
from .updates import BIG, Updates, output_lost

__all__ = ["Address", "Intake", "Refused", "cell_address"]

#: Longest msg_id a gateway may name as the one a request queues behind.
MAX_MSG_ID = 200
#: Messages returned by one session_replay_request at most.
MAX_REPLAY = 1000
#: Bytes of stored messages (their packed content) past which a replay page ends, after at
#: least one message: the gateway decodes the broker's frames by their bytes alone
#: (protocol.wire.FROM_BROKER_MAX_VALUES), and this keeps each page near that many.
REPLAY_PAGE_BYTES = 1 << 20
#: Requests about the whole bus, not a cell: no address, no worksheet lock.
GLOBAL = frozenset({mt.BROKER_STATUS_REQUEST, mt.AUTH_REQUEST, KERNELS_REQUEST,
                    mt.PERMALINK_REQUEST, mt.PERMALINK_GET_REQUEST,
                    mt.PERMALINK_DELETE_REQUEST})
#: Requests that only read: they do not wait for the worksheet's lock, so a page's replay
#: and its first execute (sent together) run side by side. A read sees the worksheet before
#: or after a write in progress, never half of it (each write is one commit).
READS = frozenset({mt.CELL_UPDATE_REQUEST, mt.SESSION_REPLAY_REQUEST, mt.FILE_REQUEST,
                   mt.KERNEL_LIST_REQUEST, mt.DELIVERY_REQUEST,
                   mt.WORKSHEET_LAYOUT_GET_REQUEST, mt.WORKSHEET_NOTEBOOK_REQUEST})
#: Sends a gateway its reply: (routing ids, request, reply type, content, buffers).
ReplyTo = Callable[[list[bytes], Message, str, dict[str, Any], list[bytes]], Awaitable[None]]


class Intake:
    """Checks, persists and answers gateway requests (one handler per request type)."""

    def __init__(self, *, wire: Session, store: Store, sessions: OpenSessions,
                 dispatch: Dispatch, cells: Cells, quotas: Quotas, metrics: BrokerMetrics,
                 interacts: Interacts, control: Control, prompts: Prompts, reply: ReplyTo,
                 log: logging.Logger) -> None:
        self.wire, self.store, self.sessions, self.dispatch = wire, store, sessions, dispatch
        self.cells, self.quotas, self.metrics, self.log = cells, quotas, metrics, log
        self.interacts, self.control, self._reply = interacts, control, reply
        self._lock = WorksheetLocks()
        #: Which kernel each worksheet's session runs (its first evaluate chooses).
        self.kernels = Kernels(dispatch.devices, store.session_requests)
        jupyter = JupyterKernels(store, sessions, quotas.budget)
        permalinks = Permalinks(store, quotas, wire.key)
        layouts = Layouts(store, quotas)
        comms = Comms(wire=wire, sessions=sessions, dispatch=dispatch)
        self.deletion = deletion = Deletion(store=store, sessions=sessions, control=control,
                                            cells=cells, jupyter=jupyter, budget=quotas.budget,
                                            log=log)
        self._handlers: dict[str, tuple[str, Callable[[Message, Address], Awaitable[Reply]]]] = {
            mt.EXECUTE_REQUEST: (mt.REQUEST_ACCEPTED, self.execute),
            mt.INTERRUPT_REQUEST: (mt.REQUEST_ACCEPTED, self.interrupt),
            mt.INTERACT_REQUEST: (mt.REQUEST_ACCEPTED, interacts.request),
            mt.INPUT_REPLY: (mt.REQUEST_ACCEPTED, prompts.answer),
            **{kind: (mt.REQUEST_ACCEPTED, comms.forward) for kind in mt.KERNEL_REQUEST_TYPES},
            mt.CELL_UPDATE_REQUEST: (mt.CELL_UPDATE_REPLY, Updates(cells).get),
            mt.SESSION_REPLAY_REQUEST: (mt.SESSION_REPLAY_REPLY, self.session_replay),
            mt.FILE_REQUEST: (mt.FILE_REPLY, self.file),
            mt.RESTART_REQUEST: (mt.REQUEST_ACCEPTED, control.restart),
            mt.BROKER_STATUS_REQUEST: (mt.BROKER_STATUS_REPLY, control.status),
            mt.AUTH_REQUEST: (mt.AUTH_REPLY, Auth(store).whose),
            mt.KERNEL_LIST_REQUEST: (mt.KERNEL_LIST_REPLY, jupyter.list),
            mt.DELIVERY_REQUEST: (mt.DELIVERY_REPLY, jupyter.delivery),
            KERNELS_REQUEST: (KERNELS_REPLY, self.list_kernels),
            mt.PERMALINK_REQUEST: (mt.PERMALINK_REPLY, permalinks.create),
            mt.PERMALINK_GET_REQUEST: (mt.PERMALINK_GET_REPLY, permalinks.get),
            mt.PERMALINK_DELETE_REQUEST: (mt.PERMALINK_DELETE_REPLY, permalinks.delete),
            mt.WORKSHEET_DELETE_REQUEST: (mt.WORKSHEET_DELETE_REPLY, deletion.worksheet),
            mt.WORKSHEET_LAYOUT_REQUEST: (mt.WORKSHEET_LAYOUT_REPLY, layouts.put),
            mt.WORKSHEET_LAYOUT_GET_REQUEST: (mt.WORKSHEET_LAYOUT_GET_REPLY, layouts.get),
            mt.WORKSHEET_NOTEBOOK_REQUEST: (mt.WORKSHEET_NOTEBOOK_REPLY,
                                            Notebooks(store, dispatch.devices).get),
        }

    async def handle(self, idents: list[bytes], msg: Message) -> None:
        reply_type, handler = self._handlers.get(msg["msg_type"], (mt.REQUEST_ACCEPTED, None))
        buffers: list[bytes] = []
        try:
            if handler is None:
                raise Refused(400, f"the broker does not take {msg['msg_type']!r} from gateways")
            if msg["msg_type"] in GLOBAL:
                content, buffers = await handler(msg, ("", "", ""))
            elif msg["msg_type"] in READS:
                content, buffers = await handler(msg, cell_address(msg))
            else:
                address = cell_address(msg)
                async with self._lock(address[:2]):
                    content, buffers = await handler(msg, address)
            content["ok"] = True
            if msg["msg_type"] in (mt.EXECUTE_REQUEST, mt.INTERACT_REQUEST):
                self.metrics.accepted(msg["msg_id"])
        except Refused as e:
            content = {"ok": False, "http_status": e.http_status, "error": str(e)}
            if e.retry_after is not None:
                content["retry_after"] = e.retry_after
        except DuplicateRequest:
            content = {"ok": False, "http_status": 409, "error": "a request with this msg_id "
                       "was already accepted"}
        except StoreFull as e:
            content = {"ok": False, "http_status": 503, "error": f"busy, retry soon: {e}"}
        except StoreUnwritable:  # the log said why, once (Broker._store_batch)
            content = {"ok": False, "http_status": 507, "retry_after": STORE_RETRY_AFTER,
                       "error": "the broker's store cannot take writes now (its disk is "
                       f"full or failing); nothing was accepted; retry in {STORE_RETRY_AFTER} s"}
        except (UnknownRequest, InvalidTransition):  # a bug, not the database: as below
            content = self._failed(msg)
        except StoreError as e:
            self.log.warning("broker could not store %s %s: %s", msg["msg_type"],
                             msg["msg_id"], e)
            content = {"ok": False, "http_status": 503, "retry_after": STORE_RETRY_AFTER,
                       "error": f"the broker's store failed; nothing was accepted; retry in "
                       f"{STORE_RETRY_AFTER} s"}
        except Exception:
            content = self._failed(msg)
        if not content.get("ok"):
            self.metrics.refused(content["http_status"])
        await self._reply(idents, msg, reply_type, content, buffers)

    def _failed(self, msg: Message) -> dict[str, Any]:
        self.log.exception("broker failed on %s %s", msg["msg_type"], msg["msg_id"])
        return {"ok": False, "http_status": 500, "error": "the broker failed on this request; "
                "its log has the details"}

    async def session_for(self, user: str, worksheet: str) -> SessionRecord | None:
        """The worksheet's open session (the seed's computation id), if it has one."""
        return await self.sessions.find(user, worksheet)

    # -- handlers: each returns (reply content, reply buffers) ------------------------------

    async def execute(self, msg: Message, address: Address) -> Reply:
        user, worksheet, cell_id = address
        content = dict(msg["content"])
        code = content.get("code")
        if code is None:  # seed step 4: no input means "evaluate the stored input again"
            previous = await self.store.cell_request(user, worksheet, cell_id)
            if previous is None:
                raise Refused(404, f"cell {cell_id} has no stored input; send its input")
            code = content["code"] = previous.input
        if not isinstance(code, str):
            raise Refused(400, "input must be a string")
        session = await self.session_for(user, worksheet)
        try:
            kernel = await self.kernels.choose(content.pop("kernel", None), session, user,
                                               worksheet)
        except ValueError as e:
            raise Refused(400, str(e)) from None
        if (why := asked.refusal(content, self.dispatch.devices,
                                 session.device if session is not None else None)) is not None:
            raise Refused(400, why)
        session_id = session.session if session is not None else uuid.uuid4().hex
        was_placed = self.dispatch.devices.holder(session_id) is not None
        # The code is stored twice: in the request, and in the session's execute_input that
        # echoes it, counted now (requests sent faster than their echoes come back cannot
        # pass the quota; OutputCap does not count it again).
        budget = self.quotas.budget
        need = (stored_size({**msg, "content": content}) + len(code.encode())
                if budget.quota else 0)
        await budget.room(user, need, "evaluation")
        facts = msg["metadata"].get("cellbus")
        facts = facts if isinstance(facts, dict) else {}
        named = facts.get("auth") == "token"
        client = facts.get("client")  # an anonymous visitor of a public gateway: its address
        holder = f"the visitor {client}" if not named and isinstance(client, str) and (
            0 < len(client) <= 200) else None
        if (over := await self.quotas.admit(user, session_id, named=named,
                                            holder=holder)) is not None:
            raise Refused(429, over[0], retry_after=over[1])
        try:
            device = self.dispatch.place(
                session_id, session.device if session is not None else None, kernel=kernel)
        except NoRoom as e:
            raise Refused(503, str(e), retry_after=e.retry_after) from None
        try:
            now = time.time()
            was_open = session is not None
            if session is None:  # the worksheet's first request (or first since a restart)
                session = SessionRecord(session=session_id, user=user, worksheet=worksheet,
                                        device=None, state=OPEN, created=now, last_activity=now)
            if device is not None:
                session.device = device
            session.last_activity = now
            request = await self._add(msg, address, content, code, session, device, kernel,
                                      queues=was_open)
            budget.add(user, need)
        except BaseException:
            if device is not None and not was_placed:
                self.dispatch.devices.unplace(session_id)  # not accepted: it holds no place
            raise
        self.kernels.started(session_id, user, worksheet, kernel)
        self.cells.track(request)
        if device is None or not await self.dispatch.send(request):
            self.dispatch.queued(session_id)  # its device left meanwhile, say: a pass places it
        return {"cell_id": cell_id, "status": request.status, "session": session_id,
                "msg_id": request.msg_id}, []

    async def list_kernels(self, msg: Message, address: Address) -> Reply:
        """``GET /kernels``: what the devices the broker knows offer."""
        return {"kernels": self.kernels.listing()}, []

    async def _add(self, msg: Message, address: Address, content: dict[str, Any], code: str,
                   session: SessionRecord, device: str | None, kernel: str, *,
                   queues: bool) -> Request:
        """Persist the execute request as it will be forwarded to the session's device, and
        the session's record (its device and activity), in one write. In an open session
        (``queues``) the request is stamped with what it queues behind: the session's newest
        execute_request still unfinished, read in that write, and the one its gateway names
        (the client's last still unanswered, gateway/jupyter/execute.py). It is aborted if one
        of them fails with ``stop_on_error`` (device/aborts.py decides, from this fact)."""
        user, worksheet, cell_id = address
        session_id = session.session
        facts: dict[str, Any] = {"user": user, "worksheet": worksheet, "cell_id": cell_id,
                                 "session": session_id, "kernel": kernel}
        forward = self.wire.msg(mt.EXECUTE_REQUEST, content, header=msg["header"],
                                metadata={**msg["metadata"], "cellbus": facts})
        given = msg["metadata"].get("cellbus")
        named = given.get(BEHIND) if isinstance(given, dict) else None

        def stamp(latest: str | None) -> Message:  # run in the store's write
            behind = [latest] if latest is not None else []
            if isinstance(named, str) and 0 < len(named) <= MAX_MSG_ID and named not in behind:
                behind.append(named)
            if not behind:
                return forward
            return {**forward, "metadata": {**forward["metadata"],
                                            "cellbus": {**facts, BEHIND: behind}}}

        request = await self.store.add_session_request(session, Request(
            msg_id=msg["msg_id"], session=session_id, user=user, worksheet=worksheet,
            cell_id=cell_id, msg_type=EXECUTE_REQUEST, input=code, message=forward,
            device=device), stamp if queues else None)
        self.sessions.stored(session)
        return request

    async def interrupt(self, msg: Message, address: Address) -> Reply:
        """Forward to the session's device; 404 for a cell that never ran, 409 for a cell
        with nothing of its own unfinished (an answer of "interrupting" would be a lie).
        With ``{"kernel": true}`` (a Jupyter client's interrupt) whatever the session runs
        is interrupted, a cell or a comm handler (which is no cell and is not stored)."""
        user, worksheet, cell_id = address
        whole = msg["content"].get("kernel", False)
        if not isinstance(whole, bool):
            raise Refused(400, "kernel must be true or false")
        if await self.store.cell_request(user, worksheet, cell_id) is None:
            raise Refused(404, f"no cell {cell_id} in worksheet {worksheet}")
        session = await self.session_for(user, worksheet)
        if session is None:
            raise Refused(409, f"worksheet {worksheet} has no session: nothing to interrupt")
        if not whole and not any(r.cell_id == cell_id for r in
                                 await self.store.unfinished_requests(session.session)):
            raise Refused(409, f"cell {cell_id} is not running: there is nothing to interrupt")
        forward = self.wire.msg(mt.INTERRUPT_REQUEST, {}, metadata={"cellbus": {
            "user": address[0], "worksheet": address[1], "cell_id": address[2],
            "session": session.session}})
        device = self.dispatch.holding(session.session, session.device)
        if device is None or not await self.dispatch.send_to(device, forward):
            raise Refused(409, f"cell {cell_id} waits for a device: there is nothing to "
                               "interrupt yet")
        return {"cell_id": address[2], "session": session.session}, []

    async def session_replay(self, msg: Message, address: Address) -> Reply:
        since = msg["content"].get("since", 0)
        limit = msg["content"].get("limit", MAX_REPLAY)
        if not isinstance(since, int) or not isinstance(limit, int) or not (
                0 <= since <= mt.MAX_SEQ) or limit < 1:
            raise Refused(400, "since and limit must be non-negative 64-bit integers")
        session = await self.session_for(*address[:2])
        if session is None:
            return {"session": None, "messages": [], "more": False}, []
        limit = min(limit, MAX_REPLAY)
        rows = await self.store.messages(session.session, since=since, limit=limit + 1)
        out: list[Message] = []
        frames: list[bytes] = []  # the kernel comms' buffers, in order (see replayed_buffers)
        size = 0
        for seq, stored in rows[:limit]:
            if out and size >= REPLAY_PAGE_BYTES:
                break
            facts = stored["metadata"].setdefault("cellbus", {})
            facts["seq"] = seq
            # A kernel comm's bytes go to Jupyter clients as the reply's frames (content
            # has no bytes in JSON); a file's go by FILE_REQUEST (a URL).
            buffers = stored.pop("buffers", None) or []
            size += message_size(stored)
            if buffers and stored["msg_type"] in COMM_IDS:
                facts["buffers"] = len(buffers)
                frames.extend(buffers)
                size += sum(len(b) for b in buffers)
            out.append(stored)
        # "bytes": what the page carries, which its reader pays for (gateway/bigreads.py)
        return {"session": session.session, "messages": out, "bytes": size,
                "more": len(rows) > len(out),
                **({"lost": since} if await self.lost(session.session, since) else {})}, frames

    async def lost(self, session: str, since: int) -> bool:
        """Whether a client at ``since`` of ``session`` had seen output this store lacks
        (:func:`broker.updates.output_lost`)."""
        return await output_lost(self.store, session, since)

    async def file(self, msg: Message, address: Address) -> Reply:
        seq, name = msg["content"].get("seq"), msg["content"].get("name")
        latest = await self.store.cell_request(*address)  # its session, even after a restart
        if (latest is None or not isinstance(seq, int) or not 1 <= seq <= mt.MAX_SEQ
                or not isinstance(name, str)):
            raise Refused(404, "no such file")
        rows = await self.store.messages(latest.session, since=seq - 1, limit=1)
        if not rows or rows[0][0] != seq:
            raise Refused(404, "no such file")
        stored = rows[0][1]
        ref = stored["content"].get("data", {}).get(mt.FILE_MIME) if isinstance(
            stored["content"].get("data"), dict) else None
        facts = stored["metadata"].get("cellbus") or {}
        if (not isinstance(ref, dict) or ref.get("name") != name
                or facts.get("cell_id") != address[2] or not stored.get("buffers")):
            raise Refused(404, "no such file")
        size = len(stored["buffers"][0])
        said = {"name": name, "mime": ref.get("mime") or "application/octet-stream",
                "size": size}
        if msg["content"].get("big") is False and size >= BIG:
            return {**said, "withheld": True}, []  # asked again, in turn (gateway/bigreads.py)
        return said, [stored["buffers"][0]]

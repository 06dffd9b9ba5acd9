"""Waiting for a Jupyter kernel (:mod:`session.jupyter`) to answer, after its start or a
restart, without heaping requests on one that is slow to.

jupyter_client's ``wait_for_ready`` asks for ``kernel_info`` once a second until one is
answered. A kernel answers its shell's requests one at a time, so one that takes T seconds
to answer (IJulia compiles on its first request; a kernel that loads a large library) had
about T requests queued when it first answered, and answered each before the first cell,
which then waited about T² seconds (17 s for 3 s; one of 10 s took past ``START_TIMEOUT``
and never started). Here a request is sent again only while the kernel has not said it is
busy with one (its iopub ``status``), after 1, 2, 4, then every 8 seconds (a request sent
while a dead kernel's connection was still up can be lost, after a restart); an answer to
any of them counts, and that answer is the kernel's info: none is asked for once more.
"""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

#: Seconds without an answer before kernel_info is asked for again, doubling up to ASK_MAX.
ASK_FIRST = 1.0
ASK_MAX = 8.0
#: Seconds between looks at whether the kernel died while it is waited for.
POLL = 0.5
#: What of the kernel's kernel_info_reply a session keeps.
KEPT = ("language_info", "banner", "implementation", "implementation_version", "help_links")


def wait_ready(kc: Any, km: Any, timeout: float) -> dict[str, Any]:
    """Wait until the kernel of ``km`` answers ``kc``'s ``kernel_info_request`` and its
    iopub is connected; what the answer said (:data:`KEPT`). ``RuntimeError`` if the kernel
    ends first or does not answer within ``timeout`` seconds."""
    import zmq
    poller = zmq.Poller()
    shell, iopub = kc.shell_channel.socket, kc.iopub_channel.socket
    poller.register(shell, zmq.POLLIN)
    poller.register(iopub, zmq.POLLIN)
    deadline = time.monotonic() + timeout
    asked: set[str] = set()
    pause, ask_at = ASK_FIRST, 0.0
    heard = connected = False  # it said busy with one of them; its iopub reached us
    while True:
        now = time.monotonic()
        if not heard and now >= ask_at:
            asked.add(kc.kernel_info())
            ask_at, pause = now + pause, min(pause * 2, ASK_MAX)
        wait = min(deadline, ask_at if not heard else deadline, now + POLL) - now
        for sock, _ in poller.poll(max(0, int(wait * 1000))):
            if sock is iopub:
                msg = kc.get_iopub_msg(timeout=0)
                connected = True
                heard = heard or (msg["msg_type"] == "status" and
                                  msg["parent_header"].get("msg_id") in asked)
                continue
            msg = kc.get_shell_msg(timeout=0)
            if msg["msg_type"] != "kernel_info_reply" or \
                    msg["parent_header"].get("msg_id") not in asked:
                continue
            if connected or _iopub_connected(kc):
                return _answered(kc, msg)
            heard, ask_at = False, 0.0  # the next request's status will show it
        if not km.is_alive():
            raise RuntimeError("Kernel died before replying to kernel_info")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")


def _iopub_connected(kc: Any) -> bool:
    """Whether the kernel's iopub reaches us: the status after its answer comes (a cell's
    first output would be lost otherwise)."""
    try:
        kc.get_iopub_msg(timeout=0.2)
    except Empty:
        return False
    return True


def _answered(kc: Any, msg: dict[str, Any]) -> dict[str, Any]:
    """The kept part of the answer ``msg``, after what jupyter_client's wait_for_ready does
    with one (adapt to a kernel of another protocol version) and with what is queued on
    iopub dropped, as it does."""
    from jupyter_client.session import protocol_version

    content = msg["content"] if isinstance(msg.get("content"), dict) else {}
    major = str(content.get("protocol_version", "")).split(".")[0]
    if major.isdigit() and major != protocol_version.split(".")[0]:
        kc.session.adapt_version = int(major)  # a kernel of an older protocol (4)
    while True:
        try:
            kc.get_iopub_msg(timeout=0.2)
        except Empty:
            break
    return {k: content[k] for k in KEPT if k in content}

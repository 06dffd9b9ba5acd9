"""``--rate`` counts every way Jupyter's API starts a kernel, not only ``POST /api/kernels``.

README: the rate limits the requests that run code (evaluate, interact, restart). Jupyter's
API started kernels past it three ways: ``POST /api/sessions`` (a session with a new
kernel), ``POST /api/kernels/ID/restart`` and a channels ``shutdown_request`` with
``restart``. Each starts a fresh session (ipykernel: a second of a device's CPU), so a
client looping on them took the device's CPU from every other user. Real broker, device and
gateway (``--auth token --rate 1/min``).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from access_util import JSON, add_user, bearer, call, store_path
from harness import Chain
from jupyter_ws import Channels
from gateway.jupyter.model import START_CELL

pytestmark = pytest.mark.timeout(90)


def kernel_starts(chain: Chain) -> int:
    """Kernel starts and restarts the broker stored (each is a request of the start cell)."""
    with closing(sqlite3.connect(f"file:{store_path(chain)}?mode=ro", uri=True)) as db:
        return db.execute("SELECT count(*) FROM requests WHERE cell_id = ?",
                          (START_CELL,)).fetchone()[0]


def alice_on_a_chain(chain: Chain, rate: str) -> tuple[str, dict[str, str], str]:
    """A chain whose gateway runs ``--auth token --rate RATE``; alice's token, headers and
    the id of a kernel she started (the bucket's first run)."""
    token = add_user(chain, "alice")
    chain.start_broker()
    chain.start_device()
    chain.start_gateway("--auth", "token", "--rate", rate)
    alice = {**bearer(token), **JSON}
    first = call(chain.port, "POST", "/api/kernels", "{}", alice)
    assert first.status == 201, first.body
    return token, alice, first.body["id"]


async def test_every_kernel_start_counts_against_the_rate(chain: Chain) -> None:
    token, alice, kernel = alice_on_a_chain(chain, "1/min")  # the one run the bucket holds
    assert call(chain.port, "POST", "/api/kernels", "{}", alice).status == 429
    tries = {
        "session": call(chain.port, "POST", "/api/sessions",
                        '{"path": "x.ipynb", "type": "notebook", "kernel": {"name": "python"}}',
                        alice),
        "restart": call(chain.port, "POST", f"/api/kernels/{kernel}/restart", "", alice),
    }
    assert {k: r.status for k, r in tries.items()} == {"session": 429, "restart": 429}
    assert all(r.body["error"].startswith("too many requests (limit 1/min); retry in ")
               for r in tries.values())  # the words of every other 429
    assert all("Retry-After" in r.headers for r in tries.values())
    channels = await Channels.open(chain.port, kernel, token=token)
    try:
        await channels.send("shutdown_request", {"restart": True})
        reply = await channels.until(lambda m: m["msg_type"] == "shutdown_reply")
    finally:
        await channels.close()
    assert reply[-1]["content"]["status"] == "error", reply[-1]["content"]
    assert "too many requests (limit 1/min); retry in " in reply[-1]["content"]["evalue"]
    assert kernel_starts(chain) == 1
    attach = call(chain.port, "POST", "/api/sessions", f'{{"kernel": {{"id": "{kernel}"}}}}',
                  alice)
    assert attach.status == 201  # a session on a running kernel starts nothing: not counted


async def test_every_kernel_shutdown_counts_against_the_rate(chain: Chain) -> None:
    """Shutting a kernel down closes its session, as a restart does (``DELETE /home/U/W``
    is counted for the same reason): ``DELETE /api/kernels/ID``, ``DELETE
    /api/sessions/ID`` and a channels ``shutdown_request`` each take from the bucket, and
    past it the kernel keeps running with its variables."""
    token, alice, kernel = alice_on_a_chain(chain, "2/min")
    channels = await Channels.open(chain.port, kernel, token=token)
    try:
        await channels.execute("x = 41")  # the bucket's second and last run
        tries = {how: call(chain.port, "DELETE", f"/api/{how}/{kernel}", "", alice)
                 for how in ("kernels", "sessions")}
        assert {k: r.status for k, r in tries.items()} == {"kernels": 429, "sessions": 429}
        assert all("Retry-After" in r.headers for r in tries.values())
        await channels.send("shutdown_request", {"restart": False})
        reply = await channels.until(lambda m: m["msg_type"] == "shutdown_reply")
        assert reply[-1]["content"]["status"] == "error", reply[-1]["content"]
        assert "too many requests" in reply[-1]["content"]["evalue"]
    finally:
        await channels.close()
    assert call(chain.port, "GET", f"/api/kernels/{kernel}", None, alice).status == 200

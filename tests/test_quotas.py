"""Per-user quotas and bounded output (issue 19 items 4 and 5; issue 18 item 3, broker side).

Real chains: a broker with small limits set by option (or environment), a real device and a
gateway, the broker's SQLite file read directly to see what was stored, its RSS read from
/proc; and `bin/cellbus up` as an operator runs it. What the page shows, in Chromium:
tests/test_browser_quotas.py.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from broker.updates import KEPT_BYTES

from access_util import JSON, add_user, bearer, call, cellbus_user, evaluate_body, store_path
from fuzzing import rss_kib
from harness import Chain, NodeProcess, free_port

#: MiB above its baseline the broker's RSS may stay after a flood and its cells read: the
#: views of recent cells (broker.cells.VIEW_BYTES, 16), not counting the JSON of big finished
#: cells it keeps for re-reads (broker.updates.KEPT_BYTES, added where a test reads them), and
#: some (SQLite's page caches, 2 MB a connection, and heap
#: that glibc could not give back: 55-63 MiB after, from 34, on a loaded 2-core machine).
#: Without the byte bound and the trim it stayed at 126 MiB; 75 from 38 was seen with CURVE
#: on every link on a loaded machine.
RSS_SLACK = 44
#: A cell that prints 4 MiB in 64 KiB lines.
FLOOD = "for i in range(64):\n    print('x' * 65535)\nprint('end of flood')"


def run_output_bytes(chain: Chain, msg_id: str) -> int:
    """Bytes the store holds for the output messages (stream, display) of one run."""
    with closing(sqlite3.connect(f"file:{store_path(chain)}?mode=ro", uri=True)) as db:
        (total,) = db.execute(
            "SELECT COALESCE(SUM(LENGTH(data)), 0) FROM messages WHERE parent = ? AND "
            "msg_type IN ('stream', 'display_data', 'execute_result')", (msg_id,)).fetchone()
    return int(total)


def stdout_text(doc: dict) -> str:
    return "".join(b["content"] for b in doc["output"].values() if b["type"] == "text")


def test_a_flooding_cell_is_cut_at_the_cap_and_still_ends_done(chain: Chain) -> None:
    """--cell-output 512 KiB: a cell printing 4 MiB keeps 512 KiB and a notice that says the
    output was truncated; the store holds no more than the cap (plus one message's envelope
    per message) for that run; the cell ends done, and the next run keeps its output."""
    cap = 512 * 1024
    chain.start_broker("--cell-output", str(cap))
    chain.start_device()
    chain.start_gateway()
    status, accepted = chain.evaluate("u/ws/1", FLOOD)
    assert status == 202, accepted
    doc = chain.wait_done("u/ws/1", timeout=60)
    assert doc["status"] == "done", doc
    text = stdout_text(doc)
    assert "this run printed more than 512 KiB, the most one run of a cell keeps (the " \
        "broker's --cell-output)" in text
    assert "The cell was not stopped" in text
    assert "end of flood" not in text  # printed after the cut: not kept
    assert cap // 2 < len(text) <= cap + 1024
    stored = run_output_bytes(chain, accepted["msg_id"])
    assert cap // 2 < stored <= cap + 16 * 1024, stored
    assert chain.evaluate("u/ws/2", "print('after the flood')")[0] == 202
    after = chain.wait_done("u/ws/2")
    assert after["status"] == "done" and stdout_text(after) == "after the flood\n"


def test_a_user_at_the_session_quota_is_refused_while_another_is_served(
        chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    """CELLBUS_USER_SESSIONS=2 (the broker's --user-sessions), --auth token: alice's third
    worksheet gets 429 naming the quota and how to free a place; her running worksheets and
    bob are served; once she restarts one, the third runs."""
    tokens = {name: add_user(chain, name) for name in ("alice", "bob")}
    monkeypatch.setenv("CELLBUS_USER_SESSIONS", "2")  # read by the nodes started below
    chain.start_broker()
    chain.start_device()
    chain.start_gateway("--auth", "token")
    alice, bob = ({**JSON, **bearer(tokens[n])} for n in ("alice", "bob"))

    def evaluate(who: dict[str, str], cell: str, code: str = "1") -> object:
        return call(chain.port, "POST", f"/home/{cell}/evaluate", evaluate_body(code), who)

    for ws in ("ws1", "ws2"):
        assert evaluate(alice, f"alice/{ws}/1").status == 202
    refused = evaluate(alice, "alice/ws3/1")
    assert refused.status == 429, refused.body
    error = refused.body["error"]
    assert "--user-sessions 2" in error and "close a worksheet" in error, error
    assert int(refused.headers["Retry-After"]) > 0
    assert evaluate(bob, "bob/ws1/1").status == 202
    assert evaluate(alice, "alice/ws1/2", "print(2)").status == 202  # a session she has
    assert call(chain.port, "POST", "/home/alice/ws1/1/restart", "", alice).status == 202
    deadline = time.monotonic() + 20
    while (answer := evaluate(alice, "alice/ws3/1")).status == 429:
        assert time.monotonic() < deadline, "restarting a worksheet freed no place"
        time.sleep(0.2)
    assert answer.status == 202, answer.body


def test_a_user_past_the_output_quota_keeps_a_notice_even_after_a_broker_restart(
        chain: Chain) -> None:
    """--user-output 1 MiB: ann's first 704 KiB are kept; after the broker restarts (it
    reads what ann keeps from the store), her next run keeps what is left of her quota and
    then the notice naming it, while bob's same run is kept whole."""
    options = ("--user-output", str(2**20), "--cell-output", "0")
    chain.start_broker(*options)
    chain.start_device()
    chain.start_gateway()
    seven = "for i in range(11):\n    print('z' * 65535)"
    assert chain.evaluate("ann/ws/1", seven)[0] == 202
    first = chain.wait_done("ann/ws/1")
    assert first["status"] == "done" and len(stdout_text(first)) == 11 * 65536
    assert chain.broker is not None
    chain.broker.stop()
    chain.start_broker(*options).wait_for_log(r"device device0 registered")
    status, accepted = chain.evaluate("ann/ws/2", seven)
    assert status == 202, accepted
    second = chain.wait_done("ann/ws/2")
    assert second["status"] == "done", second
    text = stdout_text(second)
    assert "--user-output 1 MiB" in text and "The cell was not stopped" in text, text[-300:]
    assert text.count("z") <= 2**20 - 11 * 65536  # what was left of her quota, at most
    assert run_output_bytes(chain, accepted["msg_id"]) <= 2**20 - 11 * 65536 + 4096
    assert chain.evaluate("bob/ws/1", seven)[0] == 202
    assert len(stdout_text(chain.wait_done("bob/ws/1"))) == 11 * 65536


def rss_mib(pid: int) -> float:
    return rss_kib(pid) / 1024


def test_broker_memory_returns_near_its_baseline_after_a_flood(chain: Chain) -> None:
    """Four users' cells print 12 MiB each at once (each run is cut at the default 8 MiB):
    the broker's RSS, which peaks while it takes the output in, comes back within
    RSS_SLACK MiB of what it was before, the views of recent cells it keeps on purpose
    (VIEW_BYTES) included, and the JSON of the big finished cells it keeps for re-reads (this
    test reads four 8 MiB cells: KEPT_BYTES of them stay)."""
    broker = chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    for i in range(4):  # warm: every worksheet's session, the store's pages, the code paths
        assert chain.evaluate(f"u{i}/ws/0", "print('warm')")[0] == 202
    for i in range(4):
        assert chain.wait_done(f"u{i}/ws/0")["status"] == "done"
    baseline = rss_mib(broker.proc.pid)
    flood = "for i in range(192):\n    print('y' * 65535)"
    for i in range(4):
        assert chain.evaluate(f"u{i}/ws/1", flood)[0] == 202
    peak = baseline
    for i in range(4):
        doc = chain.wait_done(f"u{i}/ws/1", timeout=90)
        assert doc["status"] == "done" and "more than 8 MiB" in stdout_text(doc)
        peak = max(peak, rss_mib(broker.proc.pid))
    deadline = time.monotonic() + 20
    kept = KEPT_BYTES / 2**20
    while (now := rss_mib(broker.proc.pid)) > baseline + RSS_SLACK + kept:
        assert time.monotonic() < deadline, (
            f"broker RSS {now:.1f} MiB 20 s after the flood; {baseline:.1f} before it")
        time.sleep(0.25)
    print(f"broker RSS: {baseline:.1f} MiB before, {peak:.1f} at its highest seen, {now:.1f} "
          "after")


def start_up(nodes: list[NodeProcess], tmp_path: Path, *options: str) -> tuple[NodeProcess, int]:
    """``bin/cellbus up OPTIONS`` on a free port and a fresh store, its state file in
    ``tmp_path``; returns it (its log holds every node's) and the gateway's port."""
    port = free_port()
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    up = NodeProcess("up", "--port", str(port), "--store", f"sqlite:///{tmp_path / 'up.db'}",
                     *options, env={"XDG_RUNTIME_DIR": str(run_dir)})
    nodes.append(up)
    up.wait_for_log(r"cellbus is up", timeout=60)
    return up, port


@pytest.mark.parametrize("auth", ["token", "none"])
def test_up_gives_the_public_defaults_with_token_auth_only(
        nodes: list[NodeProcess], tmp_path: Path, auth: str) -> None:
    """`up --auth token` runs the broker with its per-user quotas, the device with its exec
    timeout (300 s) and the gateway with a request rate per user; `up --auth none` (one user
    on loopback) with none of them; the output kept per cell run is capped in both."""
    up, _ = start_up(nodes, tmp_path, "--auth", auth)
    if auth == "token":
        up.wait_for_log(r"broker quotas: sessions per user: 4; output per cell run: 8 MiB; "
                        r"output per user: 256 MiB")
        up.wait_for_log(r"exec timeout 300 s")
        up.wait_for_log(r"gateway access: auth token; .*rate limit: 120/min")
    else:
        up.wait_for_log(r"broker quotas: sessions per user: no limit; output per cell run: "
                        r"8 MiB; output per user: no limit")
        up.wait_for_log(r"exec timeout none")
        up.wait_for_log(r"gateway access: auth none; .*rate limit: none")


def test_a_runaway_cell_in_token_mode_ends_with_a_clear_error(
        nodes: list[NodeProcess], tmp_path: Path) -> None:
    """`up --auth token --exec-timeout 2 --user-sessions 3`: the options reach the nodes,
    and `while True: pass` ends in error saying which limit stopped it."""
    up, port = start_up(nodes, tmp_path, "--auth", "token", "--exec-timeout", "2",
                        "--user-sessions", "3")
    up.wait_for_log(r"broker quotas: sessions per user: 3;")
    out = cellbus_user("add", "alice", store=f"sqlite:///{tmp_path / 'up.db'}")
    assert out.returncode == 0, out.stderr
    alice = {**JSON, **bearer(out.stdout.strip().splitlines()[-1])}
    accepted = call(port, "POST", "/home/alice/ws/1/evaluate", evaluate_body("while True: pass"),
                    alice)
    assert accepted.status == 202, accepted.body
    deadline = time.monotonic() + 60
    while (doc := call(port, "GET", "/home/alice/ws/1/update?wait=5", headers=alice).body)[
            "status"] not in ("done", "error"):
        assert time.monotonic() < deadline, doc
    assert doc["status"] == "error", doc
    errors = [b for b in doc["output"].values() if b["type"] == "error"]
    assert errors and errors[0]["ename"] == "TimeLimitExceeded", doc["output"]
    assert "2 s limit" in errors[0]["evalue"] and "--exec-timeout" in errors[0]["evalue"]


async def test_cell_views_are_bounded_in_bytes_and_rebuilt_from_the_store(tmp_path: Path) -> None:
    """Cells with max_bytes 150 kB and three cells of 64 kB output each: the oldest view is
    forgotten (the bytes kept stay under the bound), and asking for its cell again folds
    the same output from the real SQLite store."""
    from broker.cells import Cells
    from broker.store import Request, open_store, sqlite_url
    from protocol.wire import Session
    bus = Session(b"k")
    async with open_store(sqlite_url(tmp_path / "cells.db")) as store:
        cells = Cells(store, max_bytes=150_000)
        for n in range(3):
            msg = bus.msg("execute_request", {"code": "print('v' * 64000)"})
            request = await store.add_request(Request(
                msg["msg_id"], f"s{n}", "u", "ws", str(n), "execute_request", "", msg))
            cells.track(request)
            out = bus.msg("stream", {"name": "stdout", "text": "v" * 64000}, parent=msg)
            (seq,) = await store.append_messages([(f"s{n}", out)])
            cells.apply(msg["msg_id"], seq, out)
        assert len(cells.views) == 2 and 128_000 < cells.bytes <= 150_000
        oldest = await cells.for_cell("u", "ws", "0")
        assert oldest is not None and oldest.document()["output"]["stdout_0"]["content"] == \
            "v" * 64000
        assert cells.bytes <= 150_000


def test_output_not_stored_is_not_counted() -> None:
    """Tests that a batch the store failed to write counts for nothing: its device sends it
    again, and counting it twice would cut a cell that stayed within its cap."""
    from broker.outputcap import OutputCap, UserBytes, message_size
    from protocol.wire import Session

    bus = Session(b"k" * 32)

    def out(text: str) -> tuple[str, dict]:
        msg = bus.msg("stream", {"name": "stdout", "text": text},
                      parent={"msg_id": "run1", "msg_type": "execute_request"},
                      metadata={"cellbus": {"user": "ann"}})
        return "s1", msg

    batch = [out("x" * 1000) for _ in range(3)]
    cap = OutputCap(cell_output=3 * message_size(batch[0][1]) + 10, user_output=0,
                    users=UserBytes(store=None))  # type: ignore[arg-type]
    for _ in range(5):  # stored never, sent again and again
        assert cap.screen(batch) == batch
        cap.forget_screened()
    assert cap.users.used("ann") == 0
    assert cap.screen(batch) == batch  # stored at last: within the cap, nothing cut
    assert [m["content"]["text"].startswith("\n[cellbus: output truncated")
            for _, m in cap.screen([out("y")])] == [True]

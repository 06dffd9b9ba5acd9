"""Reads one client can repeat must not cost everyone else (broker/updates.py): a big
``/update`` answer is encoded by the broker, off its loop, and sent on by the gateway as the
bytes it got; and it counts against the client's ``--rate`` as a run does. Ten loops of
``GET .../update?since=0`` on a cell with 7 MB of output held the gateway's loop ~48 ms a
poll and put another user's polls at 0.2-0.5 s (bench/read_hammer.py)."""

from __future__ import annotations

from access_util import BIG_PRINT, add_user, bearer, call, run_done
from harness import Chain

def test_a_repeated_big_read_counts_against_the_rate(chain: Chain) -> None:
    """Tests that a big ``/update`` answer takes a token of ``--rate`` (429 with Retry-After
    past it), while small ones of the same client, and another user's, still answer: before,
    reads were never counted and a client could re-read a big cell without end."""
    ann, bob = add_user(chain, "ann"), add_user(chain, "bob")
    chain.start_broker()
    chain.start_device()
    chain.start_gateway("--auth", "token", "--rate", "4/min")
    big = "/home/ann/w/1"
    done = run_done(chain, ann, big, BIG_PRINT)  # two tokens: the evaluate, then the big answer
    assert len(done.body["output"]["stdout_0"]["content"]) == 400_001
    again = [call(chain.port, "GET", f"{big}/update?since=0", headers=bearer(ann))
             for _ in range(3)]
    assert [a.status for a in again] == [200, 200, 429], [a.body for a in again]
    assert "too many requests" in again[2].body["error"] and again[2].headers["Retry-After"]
    assert again[0].body == again[1].body == done.body
    # Nothing new after the seq it has: a small answer, not counted, over the rate or not.
    small = call(chain.port, "GET", f"{big}/update?since={done.body['seq']}",
                 headers=bearer(ann))
    assert small.status == 200 and small.body["output"] == {}, small.body
    assert run_done(chain, bob, "/home/bob/w/1", "print(2)").body["output"]["stdout_0"][
        "content"] == "2\n"


def test_a_big_answer_is_the_document_with_its_file_urls(chain: Chain) -> None:
    """Tests that a big document, which the broker now encodes (with the file URLs the
    gateway used to add) and the gateway sends on undecoded, is the whole document: its text,
    and a file block whose URL serves the file."""
    chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    doc = run_done(chain, "", "/home/ann/w/1",
              f"open('r.csv', 'w').write('a,b\\n')\n{BIG_PRINT}").body
    assert len(doc["output"]["stdout_0"]["content"]) == 400_001
    block = doc["output"]["file_1"] if "file_1" in doc["output"] else doc["output"]["file_0"]
    assert block["url"] == f"/home/ann/w/1/files/{block['seq']}/r.csv", block
    got = call(chain.port, "GET", block["url"])
    assert (got.status, got.body) == (200, b"a,b\n")


def test_a_finished_cells_kept_answer_is_not_served_after_it_runs_again(chain: Chain) -> None:
    """Tests that the broker's kept JSON of a finished cell's big document (broker/updates.py)
    answers only for that run: re-read, then run again with other output, ``since=0`` shows
    the new run's output."""
    chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    cell = "/home/ann/w/1"
    first = run_done(chain, "", cell, BIG_PRINT).body
    assert call(chain.port, "GET", f"{cell}/update?since=0").body == first  # kept now
    second = run_done(chain, "", cell, BIG_PRINT.replace("'x'", "'y'")).body
    assert second["request"] != first["request"]
    again = call(chain.port, "GET", f"{cell}/update?since=0")
    assert again.body == second and again.body["output"]["stdout_0"]["content"][0] == "y"


def test_a_repeated_big_file_counts_against_the_rate(chain: Chain) -> None:
    """Tests that a file over 256 KiB, read again and again, takes a token of ``--rate`` per
    read (429 with Retry-After past it) and a small file of the same user none: ten loops
    reading a 7 MB file put another user's polls at 0.8 s (bench/read_hammer.py --mode
    file), and reads were never counted."""
    ann = add_user(chain, "ann")
    chain.start_broker()
    chain.start_device()
    chain.start_gateway("--auth", "token", "--rate", "3/min")
    doc = run_done(chain, ann, "/home/ann/w/1", "open('big.bin', 'wb').write(b'x' * 400_000)\n"
                                           "open('small.txt', 'w').write('hi')").body
    urls = {b["name"]: b["url"] for b in doc["output"].values() if b["type"] == "file"}
    got = [call(chain.port, "GET", urls["big.bin"], headers=bearer(ann)) for _ in range(3)]
    assert [g.status for g in got] == [200, 200, 429], [g.body for g in got[2:]]
    assert got[0].body == got[1].body == b"x" * 400_000
    assert "too many requests" in got[2].body["error"] and got[2].headers["Retry-After"]
    small = call(chain.port, "GET", urls["small.txt"], headers=bearer(ann))
    assert (small.status, small.body) == (200, b"hi")

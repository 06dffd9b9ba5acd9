"""The ``--user-layouts`` quota (broker/layouts.py, broker/quotas.py) over a real chain: a
broker on a real SQLite file with a small quota, a gateway with ``--auth token`` on loopback,
and each user's layouts saved and read over HTTP as the page does. What the store does for
it (counting, deleting) runs against every backend in tests/test_store_layouts.py; what the
page shows of a refusal, in Chromium."""

from __future__ import annotations

import argparse
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from access_util import JSON, Answer, add_user, bearer, call
from broker.quotas import USER_LAYOUTS, add_quota_options, quota_argv, quota_config
from cellbus import up
from harness import Chain
from protocol.config import parse_args
from test_browser import browser, code_box, expect, open_worksheet, page  # noqa: F401

CELLS = [{"id": "1", "type": "markdown", "code": "# notes"},
         {"id": "2", "type": "code", "code": "print(1)"}]


#: A user of the chain: their name and token.
User = tuple[str, str]


def save(chain: Chain, user: User, worksheet: str, cells: list[dict[str, str]]) -> Answer:
    return call(chain.port, "POST", f"/home/{user[0]}/{worksheet}/layout",
                json.dumps({"cells": cells}), {**JSON, **bearer(user[1])})


def saved(chain: Chain, user: User, worksheet: str) -> object:
    answer = call(chain.port, "GET", f"/home/{user[0]}/{worksheet}/layout",
                  headers=bearer(user[1]))
    assert answer.status == 200, answer.body
    return answer.body["cells"]


def save_together(chain: Chain, user: User, worksheets: list[str]) -> list[Answer]:
    """A layout saved for each of ``worksheets`` at once, from a thread each."""
    ready = threading.Barrier(len(worksheets), timeout=30)

    def save_one(worksheet: str) -> Answer:
        ready.wait()  # every thread's request leaves together
        return save(chain, user, worksheet, CELLS)

    with ThreadPoolExecutor(len(worksheets)) as pool:
        return list(pool.map(save_one, worksheets))


def start(chain: Chain, *names: str) -> list[User]:
    """The chain with ``--user-layouts 3`` and ``--auth token``; a user for each name."""
    users = [(name, add_user(chain, name)) for name in names]
    chain.start_broker("--user-layouts", "3")
    chain.start_gateway("--auth", "token")
    return users


def test_a_new_worksheet_past_the_quota_is_refused_and_an_empty_layout_frees_a_place(
        chain: Chain) -> None:
    """Tests that with --user-layouts 3 a user's 4th new worksheet gets 429 naming the option
    (and nothing is stored for it), that replacing a stored layout is still 200, that saving
    no cells deletes the worksheet's layout and frees a place for a new one, and that another
    user is unaffected by the first one's count."""
    ann, bob = start(chain, "ann", "bob")
    for worksheet in ("w1", "w2", "w3"):
        answer = save(chain, ann, worksheet, CELLS)
        assert answer.status == 200 and answer.body["cells"] == 2, answer.body
    over = save(chain, ann, "w4", CELLS)
    assert over.status == 429, over.body
    assert "--user-layouts" in over.body["error"] and "ann" in over.body["error"], over.body
    assert saved(chain, ann, "w4") is None

    replaced = save(chain, ann, "w2", CELLS[::-1])  # a worksheet that has one: always
    assert replaced.status == 200, replaced.body
    assert saved(chain, ann, "w2") == CELLS[::-1]

    assert save(chain, bob, "w1", CELLS).status == 200  # ann's count is ann's
    assert saved(chain, bob, "w1") == CELLS

    emptied = save(chain, ann, "w1", [])
    assert emptied.status == 200 and emptied.body == {"cells": 0, "revision": None}, emptied.body
    assert saved(chain, ann, "w1") is None  # deleted, not stored empty
    assert save(chain, ann, "w4", CELLS).status == 200  # the place it freed
    assert saved(chain, ann, "w4") == CELLS
    assert save(chain, ann, "w5", CELLS).status == 429
    assert save(chain, ann, "never-saved", []).status == 200  # deleting nothing is fine


def test_names_without_a_token_are_not_counted(chain: Chain) -> None:
    """Tests that without --auth token (a user is a name in the URL anyone may change, as
    for --user-sessions) layouts are not counted: --user-layouts 1 lets a name keep two."""
    chain.start_broker("--user-layouts", "1")
    chain.start_gateway()
    for worksheet in ("w1", "w2"):
        answer = call(chain.port, "POST", f"/home/ann/{worksheet}/layout",
                      json.dumps({"cells": CELLS}), JSON)
        assert answer.status == 200, answer.body


def test_concurrent_saves_for_new_worksheets_take_no_more_than_the_quota(
        chain: Chain) -> None:
    """Tests that 24 saves for 24 new worksheets of one user sent at once store exactly 3
    layouts (--user-layouts 3): the count and the insert of one save are not interleaved with
    another's, though the broker handles saves of different worksheets concurrently. Three
    rounds, each after emptying the last one's layouts (without the per-user lock, one round
    stored more than 3 in 3 runs of 4, and the three rounds in 4 runs of 4)."""
    (ann,) = start(chain, "ann")
    for n in range(3):
        worksheets = [f"r{n}-w{i}" for i in range(24)]
        answers = save_together(chain, ann, worksheets)
        statuses = sorted(a.status for a in answers)
        assert statuses == [200] * 3 + [429] * 21, (n, [a.body for a in answers])
        kept = [w for w in worksheets if saved(chain, ann, w) is not None]
        assert len(kept) == 3, (n, kept)
        for worksheet in kept:
            assert save(chain, ann, worksheet, []).status == 200


def test_the_page_says_its_layout_was_refused_and_saves_it_once_a_place_is_free(
        chain: Chain, page: Any) -> None:  # noqa: F811
    """In Chromium, signed in as a user at their --user-layouts: typing in a new worksheet
    shows the broker's refusal above the cells (the cells stay in the browser); once the
    user empties another worksheet's layout, the next edit is saved in the store and the
    note goes."""
    (ann,) = start(chain, "ann")
    for worksheet in ("w1", "w2", "w3"):
        assert save(chain, ann, worksheet, CELLS).status == 200
    page.goto(chain.url(f"/?token={ann[1]}"))  # signs in (a cookie)
    cell = open_worksheet(page, chain, ws="fresh").nth(0)
    code_box(cell).fill("x = 1")
    note = page.locator("#layout-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("kept in this browser only")
    expect(note).to_contain_text("--user-layouts 3")
    assert saved(chain, ann, "fresh") is None

    assert save(chain, ann, "w1", []).status == 200
    code_box(cell).fill("x = 2")
    expect(note).to_be_hidden()
    layout = saved(chain, ann, "fresh")
    assert isinstance(layout, list) and layout[0]["code"] == "x = 2", layout


def test_up_passes_the_layout_quota_to_its_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that `bin/cellbus up --user-layouts N` hands N to its broker with or without
    token auth, and that the broker reads it (default 200, CELLBUS_USER_LAYOUTS, negative
    means none)."""
    args = parse_args(up.parser(), ["--user-layouts", "7"])
    for token in (True, False):
        argv = quota_argv(args, token=token)
        assert argv[argv.index("--user-layouts") + 1] == "7"
    broker = argparse.ArgumentParser()
    add_quota_options(broker)
    assert quota_config(parse_args(broker, [])).user_layouts == USER_LAYOUTS == 200
    monkeypatch.setenv("CELLBUS_USER_LAYOUTS", "5")
    assert quota_config(parse_args(broker, [])).user_layouts == 5
    assert quota_config(parse_args(broker, ["--user-layouts", "-1"])).user_layouts == 0


def test_an_anonymous_service_counts_new_worksheets_layouts_against_the_rate(
        chain: Chain) -> None:
    """With no tokens, --user-layouts binds no one (any name in the URL will do), so a save
    that may add a row (a worksheet this gateway has not saved lately) counts against
    --rate, as a permalink does; saving the same worksheet again, as the page does while its
    user types, does not."""
    chain.start_broker()
    chain.start_gateway("--rate", "3/min")

    def save_anonymously(worksheet: str) -> Answer:
        return call(chain.port, "POST", f"/home/someone/{worksheet}/layout",
                    json.dumps({"cells": CELLS}), JSON)

    assert [save_anonymously(f"w{n}").status for n in range(3)] == [200, 200, 200]
    assert [save_anonymously("w0").status for _ in range(5)] == [200] * 5  # typing on
    refused = save_anonymously("w3")
    assert refused.status == 429, refused.body
    assert "too many requests" in refused.body["error"]
    answer = call(chain.port, "GET", "/home/someone/w3/layout")
    assert answer.status == 200 and answer.body["cells"] is None

"""The worksheet page over a store restored from a backup (README: Backups): output the page
shows from after the backup point is no longer stored, and the page says so, on a WebSocket
(its socket open across the restore: output_lost) and on long polling (/session's
``lost``), where before it said nothing and a reload silently showed less."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import Chain, wait_broker_answers
from test_backup import backup
from test_browser import browser, expect, open_page, open_worksheet, run  # noqa: F401


def test_a_page_is_told_when_a_restored_store_lacks_output_it_shows(
        browser: Any, chain: Chain, tmp_path: Path) -> None:  # noqa: F811
    """Tests that a page on a WebSocket and one on long polling, both open across the
    restore, each show a note (an alert) that the store lost output they show, and keep
    showing that output; and that a reload shows what the store has, with no note."""
    store = Path(chain.store.removeprefix("sqlite://"))
    broker = chain.start_broker()
    chain.start_device()
    chain.start_gateway()
    pages = [open_page(browser), open_page(browser)]
    live, polled = (next(p) for p in pages)
    polled.route_web_socket("**/ws", lambda ws: ws.close())  # no WebSocket gets through
    cells = open_worksheet(live, chain)
    run(cells.nth(0), "print('kept')")
    expect(cells.nth(0)).to_have_attribute("data-status", "done")
    with polled.expect_response(lambda r: "/session?" in r.url):  # on long polling now
        other = open_worksheet(polled, chain, ws=live.url.split("ws=")[1].split("&")[0])
    expect(other.nth(0).locator(".cellbus-output")).to_have_text("kept")
    backup(store, tmp_path / "backup.db")
    run(cells.nth(1), "print('after the backup')")
    expect(cells.nth(1).locator(".cellbus-output")).to_have_text("after the backup")
    # followed there from its /session: it has seen the session past the backup point
    expect(other.nth(1).locator(".cellbus-output")).to_have_text("after the backup")
    notes = [p.get_by_role("alert").filter(has_text="Output lost from the store")
             for p in (live, polled)]
    expect(notes[0]).to_be_hidden()

    broker.stop()
    (tmp_path / "backup.db").replace(store)
    chain.start_broker()
    wait_broker_answers(chain)
    run(cells.nth(2), "print('new')")  # the open socket's subscription finds the loss
    expect(cells.nth(2).locator(".cellbus-output")).to_have_text("new")
    for note, shown in zip(notes, (cells, other)):
        expect(note).to_be_visible()
        expect(shown.nth(1).locator(".cellbus-output")).to_have_text("after the backup")
    live.reload()
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("kept")
    expect(cells.nth(1).locator(".cellbus-output")).to_be_empty()  # what the store has
    expect(notes[0]).to_be_hidden()
    for p in pages:  # each context closed, and no script error on its page
        next(p, None)

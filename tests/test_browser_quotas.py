"""What the page shows of a cell past the broker's --cell-output or --user-output (Chromium).

A module of its own: the sync Playwright fixtures of tests/test_browser.py hold a running
event loop for the module's life, which async tests in the same module cannot share.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from access_util import call
from harness import Chain
from test_browser import browser, expect, open_worksheet, page, run  # noqa: F401 (fixtures)
from test_browser_console import Console


def test_the_page_shows_the_truncation_notice_and_the_cell_done(chain: Chain, page) -> None:
    """In Chromium: a cell past --cell-output shows the kept output, then the notice; the
    cell ends done."""
    chain.start_broker("--cell-output", str(64 * 1024))
    chain.start_device()
    chain.start_gateway()
    cell = open_worksheet(page, chain).nth(0)
    run(cell, "for i in range(64):\n    print('w' * 16383)")
    expect(cell).to_have_attribute("data-status", "done")
    out = cell.locator(".cellbus-output .cellbus-stdout")
    expect(out).to_contain_text("[cellbus: output truncated here: this run printed more than "
                                "64 KiB")
    assert out.inner_text().count("w") <= 64 * 1024


def test_the_page_says_which_quota_refused_a_run_and_small_runs_go_on(chain: Chain,
                                                                       page) -> None:
    """In Chromium, --user-output 4096: a cell whose code (kept twice) would pass it is
    refused with the words that name the quota and how to free space; a small cell runs."""
    chain.start_broker("--user-output", "4096")
    chain.start_device()
    chain.start_gateway()
    cells = open_worksheet(page, chain)
    big, small = cells.nth(0), cells.nth(1)
    run(big, "x = 1  # " + "q" * 3000)
    expect(big).to_have_attribute("data-status", "failed")
    expect(big).to_contain_text("The server refused this evaluation: quota:")
    expect(big).to_contain_text("the broker's --user-output 0.00391 MiB")
    expect(big).to_contain_text("To free space")
    run(small, "print(6 * 7)")
    expect(small).to_have_attribute("data-status", "done")
    expect(small.locator(".cellbus-output")).to_contain_text("42")


def test_the_two_output_limits_say_what_happened_and_what_to_do(page: Any,  # noqa: F811
                                                                 chain: Chain) -> None:
    """Tests the words of a cell past the broker's --cell-output (kept) and then the
    device's --max-output (printed), on the page and in the stored output alike: each
    names its size in the same unit, what it counts and its option, what happened to the
    cell, and what to do."""
    chain.start_broker("--cell-output", str(64 * 1024))
    chain.start_device("--max-output", str(256 * 1024))
    chain.start_gateway()
    console = Console(page)
    ws = f"t-{uuid.uuid4().hex[:8]}"
    cell = open_worksheet(page, chain, ws=ws).nth(0)
    run(cell, "x = 1\nfor i in range(64):\n    print('w' * 16383)")
    expect(cell).to_have_attribute("data-status", "error")
    cut = ("[cellbus: output truncated here: this run printed more than 64 KiB, the most one "
           "run of a cell keeps (the broker's --cell-output). The cell was not stopped, but "
           "nothing it printed after this is kept or shown; to keep large output, write it "
           "to a file.]")
    stopped = ("OutputLimitExceeded: this run printed more than 256 KiB, the most one run of "
               "a cell may print (the device's --max-output), so it was stopped; the session "
               "restarts fresh (its variables are gone). Print less (to keep large output, "
               "write it to a file), then run it again.")
    expect(cell.locator(".cellbus-output .cellbus-stdout")).to_contain_text(cut)
    expect(cell.locator(".cellbus-error")).to_contain_text(stopped)
    doc = call(chain.port, "GET", f"/home/guest/{ws}/1/update").body
    text = json.dumps(doc["output"])
    assert json.dumps(cut)[1:-1] in text, text[-2000:]
    error = [b for b in doc["output"].values() if b["type"] == "error"]
    assert f"{error[0]['ename']}: {error[0]['evalue']}" == stopped, error
    assert console.settled(page) == []

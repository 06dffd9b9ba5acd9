"""What the page shows of a cell past the broker's --cell-output or --user-output (Chromium).

A module of its own: the sync Playwright fixtures of tests/test_browser.py hold a running
event loop for the module's life, which async tests in the same module cannot share.
"""

from __future__ import annotations

from harness import Chain
from test_browser import browser, expect, open_worksheet, page, run  # noqa: F401 (fixtures)


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
    expect(out).to_contain_text("[cellbus: output truncated at 0.0625 MiB")
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

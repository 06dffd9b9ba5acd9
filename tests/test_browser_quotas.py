"""What the page shows of a cell whose output passed the broker's --cell-output (Chromium).

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

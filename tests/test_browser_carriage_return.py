"""A carriage return (``\\r``) in output goes back to the start of its line, as in a terminal
and in Jupyter: a progress bar (``print('\\r50%', end='')``, tqdm, IPython's clear_output
outside a kernel) shows its last state on one line, not every state run together; ``\\r\\n``
is a newline, even split across two messages. Each text the output ever showed is recorded
(a MutationObserver) so a state run together with the one before fails the test too."""

from __future__ import annotations

from typing import Any

from test_browser import browser, expect, open_worksheet, page, run, web  # noqa: F401

RECORD = """out => {
  window.seen = [];
  new MutationObserver(() => window.seen.push(out.innerText))
    .observe(out, {childList: true, subtree: true, characterData: true});
}"""

PROGRESS = r"""import time, sys
for i in range(5):
    print(f'\r{i * 25}%', end='', flush=True)
    time.sleep(0.15)
print('\rdone!')
print('a', end='\r', flush=True)
time.sleep(0.3)
print('\nb')
print('\x1b[32mgreen 1\x1b[0m\r\x1b[32mgreen 2\x1b[0m', file=sys.stderr)"""


def test_a_progress_bar_shows_its_last_state_on_one_line(page: Any, web: Any) -> None:
    cells = open_worksheet(page, web)
    cell = cells.nth(0)
    out = cell.locator(".cellbus-output")
    out.evaluate(RECORD)
    run(cell, PROGRESS)
    expect(cell).to_have_attribute("data-status", "done")
    expect(cell.locator(".cellbus-stdout")).to_have_text("done!\na\nb\n")
    expect(cell.locator(".cellbus-stderr span.ansi-green-fg")).to_have_text("green 2")
    expect(cell.locator(".cellbus-stderr")).to_have_text("green 2\n")
    stdout_seen = [t.split("green")[0] for t in page.evaluate("window.seen")]
    for text in stdout_seen:  # every state shown alone: never "0%25%" nor "done!\r..."
        first = text.split("\n")[0]
        assert first in ("", "0%", "25%", "50%", "75%", "100%", "done!"), stdout_seen
    page.reload()  # the stored output (/update's) is shown the same way
    cell = page.locator(".cellbus-cell").nth(0)
    expect(cell.locator(".cellbus-stdout")).to_have_text("done!\na\nb\n")
    expect(cell.locator(".cellbus-stderr")).to_have_text("green 2\n")


def test_a_long_progress_bar_is_one_line_not_a_capped_block(page: Any, web: Any) -> None:
    """20,000 states on one line (no newline): the block holds the last one, not 200 KB of
    states cut into "N hidden" with its head and tail."""
    cell = open_worksheet(page, web).nth(0)
    run(cell, "for i in range(20000):\n    print(f'\\rstep {i:05d}', end='')\nprint()")
    expect(cell).to_have_attribute("data-status", "done", timeout=30_000)
    text = cell.locator(".cellbus-stdout")
    expect(text).to_have_text("step 19999\n")
    expect(text.locator(".cellbus-hidden")).to_have_count(0)

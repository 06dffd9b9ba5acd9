"""What the page says when answering an input() prompt fails: a network error does not
claim the server was not reached (the POST may have arrived), and a 409 says the prompt was
answered, maybe by an earlier try of this page's."""

from __future__ import annotations

from test_browser import browser, expect, open_worksheet, page, run, web  # noqa: F401


def test_a_network_error_says_the_answer_may_have_arrived(page, web) -> None:
    cell = open_worksheet(page, web).nth(0)
    run(cell, "print('got', input('Go? '))")
    box = cell.locator(".cellbus-prompt-input")
    expect(box).to_be_visible()
    page.route("**/input?*", lambda route: route.abort("connectionreset"))
    box.fill("one")
    box.press("Enter")
    notice = cell.locator(".cellbus-prompt-notice")
    expect(notice).to_contain_text("your answer may have arrived")
    expect(notice).not_to_contain_text("Could not reach")
    page.unroute("**/input?*")
    box.press("Enter")  # it did not arrive (the route dropped it): the prompt still waits
    expect(cell.locator(".cellbus-output")).to_contain_text("got one")
    expect(cell.locator(".cellbus-prompt-input")).to_have_count(0)


def test_a_409_says_the_prompt_was_answered(page, web) -> None:
    """The gateway's 409 (its body as the gateway words it) reaches the page before the
    output that closes the prompt: the page says the prompt was answered, maybe by an
    earlier try of its own, instead of asking to try again."""
    cell = open_worksheet(page, web).nth(0)
    run(cell, "print('got', input('Go? '))")
    box = cell.locator(".cellbus-prompt-input")
    expect(box).to_be_visible()
    page.route("**/input?*", lambda route: route.fulfill(
        status=409, content_type="application/json",
        body='{"error": "cell 1 waits for no input"}'))
    box.fill("second")
    box.press("Enter")
    notice = cell.locator(".cellbus-prompt-notice")
    expect(notice).to_contain_text("it was answered (an earlier try of yours may have "
                                   "arrived) or its run ended")
    page.unroute("**/input?*")
    box.press("Enter")
    expect(cell.locator(".cellbus-output")).to_contain_text("got second")

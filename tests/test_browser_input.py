"""input() and getpass() in real Chromium through the whole chain: the prompt shows a box in
the cell, Enter sends the answer and the program goes on; a password box is masked; a page
that reloads while the session waits shows the prompt again."""

from __future__ import annotations

from test_browser import browser, expect, open_worksheet, page, run, web  # noqa: F401


def test_type_in_the_box_press_enter_and_the_program_goes_on(page, web) -> None:
    cell = open_worksheet(page, web).nth(0)
    run(cell, 'print("start")\nname = input("Name? ")\nprint("hi", name)')
    box = cell.locator(".cellbus-prompt-input")
    expect(box).to_be_visible()
    expect(box).to_have_attribute("type", "text")
    expect(cell.locator(".cellbus-prompt-text")).to_have_text("Name? ")
    expect(cell.locator(".cellbus-output")).to_contain_text("start")
    box.fill("Ada")
    box.press("Enter")
    out = cell.locator(".cellbus-output")
    expect(out).to_contain_text("hi Ada")
    expect(cell).to_have_attribute("data-status", "done")
    expect(out).to_have_text("start\nName? Ada\nhi Ada")
    expect(cell.locator(".cellbus-prompt-input")).to_have_count(0)


def test_password_box_is_masked_and_a_reloaded_page_shows_the_pending_prompt(page, web) -> None:
    cells = open_worksheet(page, web)
    run(cells.nth(0), "import getpass\nkey = getpass.getpass('Key: ')\nprint(key[::-1])")
    box = cells.nth(0).locator(".cellbus-prompt-input")
    expect(box).to_have_attribute("type", "password")
    page.reload()  # the session still waits: the stored prompt comes back with the output
    cell = page.locator(".cellbus-cell").nth(0)
    box = cell.locator(".cellbus-prompt-input")
    expect(box).to_be_visible()
    expect(box).to_have_attribute("type", "password")
    box.fill("olleh")
    box.press("Enter")
    out = cell.locator(".cellbus-output")
    expect(out).to_contain_text("hello")
    expect(out).not_to_contain_text("olleh")  # the password itself is shown nowhere


def test_an_answer_to_a_prompt_no_longer_pending_says_so(page, web) -> None:
    """Another page (here: a direct POST) answered first: this page's Enter gets the 409,
    said in words, and the program went on with the first answer."""
    cell = open_worksheet(page, web).nth(0)
    run(cell, "print(input('Go? '))")
    box = cell.locator(".cellbus-prompt-input")
    expect(box).to_be_visible()
    ws = page.url.split("ws=")[1].split("&")[0]
    assert web.http("POST", f"/home/guest/{ws}/1/input", b'{"value": "first"}')[0] == 202
    out = cell.locator(".cellbus-output")
    expect(out).to_contain_text("first")
    expect(cell.locator(".cellbus-prompt-input")).to_have_count(0)


def test_a_prompt_over_long_polling(page, web) -> None:
    """No WebSocket gets through: the prompt comes with /update, the answer by POST."""
    page.route_web_socket("**/ws", lambda ws: ws.close())
    cell = open_worksheet(page, web).nth(0)
    run(cell, "n = int(input('How many? '))\nprint('x' * n)")
    box = cell.locator(".cellbus-prompt-input")
    expect(box).to_be_visible()
    box.fill("3")
    box.press("Enter")
    expect(cell.locator(".cellbus-output")).to_contain_text("xxx")
    expect(cell).to_have_attribute("data-status", "done")

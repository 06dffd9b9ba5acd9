"""Without tokens (a public gateway, ``--allow-anonymous``), a guest's worksheet name is all
that keeps the worksheet theirs: any visitor who names it reads its output and runs code in
its session. The page made it from Math.random, 32 bits of a generator that is no secret's;
now 128 bits from the browser's cryptographic one, as are the ids the client makes (which
over plain http, no secure context, fell back to Math.random too)."""

from __future__ import annotations

import re
from typing import Any

from test_browser import browser, expect, page, run, web  # noqa: F401


def test_a_new_worksheets_name_is_128_random_bits(page: Any, web: Any) -> None:  # noqa: F811
    names = set()
    for _ in range(2):
        page.goto(web.url("/"))
        expect(page).to_have_url(re.compile(r"\?ws=ws-[0-9a-f]{32}$"))
        names.add(page.url.split("ws=")[1])
        page.evaluate("localStorage.clear()")  # the next visit is a new visitor's
    assert len(names) == 2
    page.goto(web.url("/?z=eJwrKMrMK9EwMtIEAA"))  # a shared link opens a new worksheet too
    expect(page).to_have_url(re.compile(r"ws=ws-[0-9a-f]{32}"))


def test_the_client_makes_its_ids_with_the_cryptographic_generator(
        page: Any, web: Any) -> None:  # noqa: F811
    """Math.random is never asked for a name or an id: they come from
    crypto.getRandomValues, secure context or not (randomUUID, tried first before, exists in
    a secure context only, and over plain http the client fell back to Math.random). Here
    Math.random throws and randomUUID is gone: the page names its worksheet and a cell runs."""
    page.add_init_script("Math.random = () => { throw new Error('Math.random asked'); };"
                         "Crypto.prototype.randomUUID = undefined;")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(web.url("/"))
    expect(page).to_have_url(re.compile(r"\?ws=ws-[0-9a-f]{32}$"))
    cell = page.locator(".cellbus-cell").nth(0)
    run(cell, "print(6 * 7)")
    expect(cell.locator(".cellbus-output")).to_have_text("42")
    assert not errors, errors

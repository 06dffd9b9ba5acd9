"""The worksheet's session on the page (issue 26, item 3): the kernel it runs, its state
(none, starting, busy, idle, gone: why), Restart, and a session that ended on its own (the
device's --idle-timeout) said when the next run starts a new one, not only by a NameError."""

from __future__ import annotations

import time
from typing import Any

from harness import Chain
from test_browser import ARTIFACTS, browser, expect, open_worksheet, page, run, web  # noqa: F401


def session_bar(page: Any) -> Any:
    return page.locator(".cellbus-session")


def test_state_kernel_and_restart(page: Any, web: Any) -> None:
    cells = open_worksheet(page, web)
    bar = session_bar(page)
    expect(bar.locator(".cellbus-kernel")).to_have_text("Python 3")
    expect(bar).to_have_attribute("data-state", "none")
    run(cells.nth(0), "import time\nx = 1\nprint('sleeping', flush=True)\ntime.sleep(1.5)")
    expect(cells.nth(0).locator(".cellbus-output")).to_have_text("sleeping")
    expect(bar).to_have_attribute("data-state", "busy")
    expect(bar).to_have_attribute("data-state", "idle")
    bar.get_by_role("button", name="Restart", exact=True).click()
    expect(bar).to_have_attribute("data-state", "gone")
    expect(bar.locator(".cellbus-session-state")).to_contain_text("restarted")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "session-restarted.png"))
    run(cells.nth(1), "print(x)")
    expect(cells.nth(1).locator(".cellbus-error")).to_contain_text("NameError")
    expect(bar).to_have_attribute("data-state", "idle")
    expect(bar.locator(".cellbus-session-state")).to_have_text("idle")  # no news: it restarted


def test_a_session_ended_by_the_idle_timeout_is_said(page: Any, chain: Chain) -> None:
    chain.start_broker()
    chain.start_device("--idle-timeout", "1")
    chain.start_gateway()
    cells = open_worksheet(page, chain)
    bar = session_bar(page)
    run(cells.nth(0), "x = 1")
    expect(bar).to_have_attribute("data-state", "idle")
    assert chain.broker is not None
    chain.broker.wait_for_log(r"closed session \S+ \(idle timeout\)", timeout=30)
    run(cells.nth(1), "print(x)")
    expect(cells.nth(1).locator(".cellbus-error")).to_contain_text("NameError")
    state = bar.locator(".cellbus-session-state")
    expect(state).to_contain_text("a new session: the last one ended (idle too long")
    expect(bar).to_have_class("cellbus-session cellbus-session-news")
    page.screenshot(path=str(ARTIFACTS / "session-replaced.png"))
    run(cells.nth(2), "print(2)")  # the next run: the news is old
    expect(cells.nth(2).locator(".cellbus-output")).to_have_text("2")
    expect(state).to_have_text("idle")


def test_an_idle_session_is_warned_kept_and_its_end_said_after_a_reload(
        page: Any, chain: Chain) -> None:
    """The device's --idle-timeout (4 s: the warning shows from 2 s idle) is warned of with
    Keep; Keep runs nothing, so the warning comes again later; left alone, the session ends
    and the bar says why, from the broker's session_closed note, also after a reload."""
    chain.start_broker()
    chain.start_device("--idle-timeout", "4")
    chain.start_gateway()
    cells = open_worksheet(page, chain)
    bar = session_bar(page)
    state = bar.locator(".cellbus-session-state")
    keep = bar.get_by_role("button", name="Keep")
    run(cells.nth(0), "x = 1")
    expect(cells.nth(0)).to_have_attribute("data-status", "done")
    expect(keep).to_be_hidden()
    expect(state).to_contain_text("idle: variables are cleared in", timeout=10_000)
    expect(bar).to_have_class("cellbus-session cellbus-session-warning")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "session-idle-warning.png"))
    keep.focus()
    page.keyboard.press("Enter")
    expect(keep).to_be_hidden()
    # its focus went to Restart beside it, not to the page's body
    expect(bar.get_by_role("button", name="Restart", exact=True)).to_be_focused()
    expect(state).to_have_text("idle")
    expect(keep).to_be_visible(timeout=10_000)  # the keep-alive run's own idle time
    assert chain.broker is not None
    chain.broker.wait_for_log(r"closed session \S+ \(idle timeout\)", timeout=30)
    expect(bar).to_have_attribute("data-state", "gone")
    expect(state).to_contain_text("gone: idle too long; its variables were cleared")
    expect(keep).to_be_hidden()
    expect(cells.nth(0)).to_have_attribute("data-status", "done")  # Keep's run is no cell's
    page.screenshot(path=str(ARTIFACTS / "session-gone-idle.png"))
    page.reload()
    expect(bar).to_have_attribute("data-state", "gone")
    expect(state).to_contain_text("gone: idle too long")
    run(cells.nth(1), "print(x)")
    expect(cells.nth(1).locator(".cellbus-error")).to_contain_text("NameError")
    expect(bar).to_have_attribute("data-state", "idle")


def test_a_session_whose_device_is_lost_is_said_gone(page: Any, chain: Chain) -> None:
    """A device killed outright reports nothing; the broker, taking it for lost, tells its
    worksheets (a session_closed note with the reason "device lost")."""
    chain.start_broker()
    device = chain.start_device()
    chain.start_gateway()
    cells = open_worksheet(page, chain)
    bar = session_bar(page)
    run(cells.nth(0), "x = 1")
    expect(bar).to_have_attribute("data-state", "idle")
    device.kill_group()  # kill -9 of the device; its workers die with it
    expect(bar).to_have_attribute("data-state", "gone", timeout=20_000)
    expect(bar.locator(".cellbus-session-state")).to_contain_text(
        "gone: its machine stopped answering")
    page.screenshot(path=str(ARTIFACTS / "session-device-lost.png"))


def test_the_warning_comes_two_minutes_before_and_stops_when_overdue(
        page: Any, chain: Chain) -> None:
    """With the default-like timeout of 10 min (the page's clock run ahead, not waited
    for): nothing at first, the warning 2 min before, and no countdown once the session
    is well past its end without a note (an interact's longer timeout, say). The page's
    clock is 5 min behind the device's (a laptop's or a device host's clock off), so the
    idle note's date is in the page's future: the countdown runs from when it came. Before,
    it ran from that date, and the warning came 5 min late, after the device had ended the
    session."""
    chain.start_broker()
    chain.start_device("--idle-timeout", "600")
    chain.start_gateway()
    page.clock.install(time=time.time() - 300)
    cells = open_worksheet(page, chain)
    bar = session_bar(page)
    state = bar.locator(".cellbus-session-state")
    run(cells.nth(0), "x = 1")
    expect(cells.nth(0)).to_have_attribute("data-status", "done")
    expect(state).to_have_text("idle")
    page.clock.fast_forward("07:50")
    expect(state).to_have_text("idle")  # 10 s before the warning
    page.clock.fast_forward("00:15")
    expect(state).to_contain_text("idle: variables are cleared in 2 min")
    expect(bar.get_by_role("button", name="Keep")).to_be_visible()
    page.clock.fast_forward("02:40")
    expect(state).to_have_text("idle")
    expect(bar.get_by_role("button", name="Keep")).to_be_hidden()

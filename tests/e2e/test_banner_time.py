"""The session banner on the printer's page: "More time" without reloading the page (what the
technician typed stays), the idle limit shown with a warning before it ends the session, and
"Stay" counting as activity (real system: proxy, tunnel, lab EWS, Chromium)."""

from __future__ import annotations

import asyncio

from playwright.async_api import Browser, expect

from lab.catalog import by_name
from printgate.cli.demo_system import DemoSystem

PRINTER = by_name("ricoh_mpc3002")


async def test_more_time_keeps_the_page_and_the_idle_warning_offers_to_stay(
        system: DemoSystem, browser: Browser) -> None:
    launch = await system.open_session_as_demo_user(PRINTER.ip)
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(launch)
        await expect(page.locator("body")).to_contain_text("RICOH")
        (session,) = system.cloud.broker.live_sessions_of("user-demo-tech")
        left = page.locator("#__printgate_left")
        await expect(page.locator("#__printgate_bar")).to_contain_text("min without activity")
        before = int(await left.get_attribute("data-expires") or 0)

        # the technician has typed something into the printer's login page
        await page.goto(page.url.split("/", 3)[0] + "//" + page.url.split("/", 3)[2] + "/login")
        typed = page.locator("#username")
        await typed.fill("kept while asking for more time")
        await asyncio.sleep(1.1)
        await page.get_by_role("button", name="More time").click()
        await expect(page.locator("#__printgate_msg")).to_have_text("More time granted")
        assert await typed.input_value() == "kept while asking for more time"  # no reload
        after = int(await left.get_attribute("data-expires") or 0)
        (extended,) = system.cloud.broker.live_sessions_of("user-demo-tech")
        assert after > before and int(extended.expires_at.timestamp()) == after

        # a minute before the idle limit the bar warns; "Stay" is activity for the proxy
        warning = page.locator("#__printgate_idle")
        await expect(warning).to_be_hidden()
        await left.evaluate("e => e.setAttribute('data-idle', '50')")  # as if the limit were near
        await expect(warning).to_be_visible()
        await expect(warning).to_contain_text("No activity: the session ends in")
        quiet_since = system.cloud.routes.last_activity(session.id)
        await asyncio.sleep(1.1)
        await page.get_by_role("button", name="Stay").click()
        for _ in range(50):
            now = system.cloud.routes.last_activity(session.id)
            if now is not None and quiet_since is not None and now > quiet_since:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("Stay did not count as activity")
        events = [e for e in await system.audit_events() if e.session_id == session.id]
        assert any(e.type == "dwa.session.extended" for e in events)
    finally:
        await system.close_all_sessions(reason="test over")
        await context.close()

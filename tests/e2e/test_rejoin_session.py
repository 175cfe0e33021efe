"""A technician who closed the session tab gets back into the same session: "Open web page"
(now "Rejoin web page") and My sessions give a new launch link into it, in a new tab; nobody
else and no other address can (real system: broker, relay, agent tunnel, proxy, Chromium)."""

from __future__ import annotations

import asyncio
import re
import time

import pyotp
from playwright.async_api import Browser, expect

from lab.catalog import by_name
from printgate.cli.demo_system import DemoSystem
from printgate.domain import DeviceId

PRINTER = by_name("canonprinter_tm")
SESSION_HOST = re.compile(r"^(http://s-[0-9a-f]+\.dwa\.localhost:\d+)/")


async def test_closed_tab_rejoins_the_same_session_in_a_new_tab(system: DemoSystem, browser: Browser) -> None:
    user = system.demo_user
    # the shared system may still hold a session of the demo technician from an earlier test (the
    # alert-session and ticket tests open some): this test starts by opening a new one
    await system.close_all_sessions(reason="rejoin test starts from no session")
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(system.portal_url + "/login")
    await page.fill("input[name=email]", user.email)
    await page.fill("input[name=password]", user.password)
    await page.get_by_role("button", name="Sign in").click()
    for _ in range(3):  # a code another test of this shared system used is refused: the next one
        await page.fill("input[name=code]", pyotp.TOTP(user.totp_secret).now())
        await page.get_by_role("button", name="Verify").click()
        await page.wait_for_load_state()
        if page.url.endswith("/devices"):
            break
        await asyncio.sleep(30 - time.time() % 30 + 0.5)
    await page.wait_for_url("**/devices")
    row = page.locator("tr", has_text=re.compile(re.escape(PRINTER.ip) + r"(?!\d)"))

    async with context.expect_page() as opened:
        await row.get_by_role("button", name="Open web page").click()
    first = await opened.value
    await first.wait_for_url(SESSION_HOST, timeout=30_000)
    await expect(first.locator("body")).to_contain_text("Canon")
    origin = SESSION_HOST.match(first.url).group(1)  # type: ignore[union-attr]
    (session,) = system.cloud.broker.live_sessions_of("user-demo-tech")
    await first.close()  # the technician closes the tab

    try:
        await page.reload()
        row = page.locator("tr", has_text=re.compile(re.escape(PRINTER.ip) + r"(?!\d)"))
        await expect(row).to_contain_text("your session")
        async with context.expect_page() as opened:
            await row.get_by_role("button", name="Rejoin web page").click()
        again = await opened.value
        await again.wait_for_url(SESSION_HOST, timeout=30_000)
        assert again.url.startswith(origin)  # the same session host
        await expect(again.locator("body")).to_contain_text("Canon")
        assert [s.id for s in system.cloud.broker.live_sessions_of("user-demo-tech")] == [session.id]
        await again.close()

        # My sessions: names, time left, a rejoin button into the same session
        await page.goto(system.portal_url + "/sessions")
        live = page.locator(f"#live-sessions tr[data-session-id='{session.id}']")
        await expect(live).to_contain_text("Acme Offices")
        await expect(live).to_contain_text(re.compile(r"\d+ min"))
        async with context.expect_page() as opened:
            await live.get_by_role("button", name="Rejoin").click()
        third = await opened.value
        await third.wait_for_url(SESSION_HOST, timeout=30_000)
        assert third.url.startswith(origin)
        await third.close()

        # only its own user, only from the address it was opened from
        broker = system.cloud.broker
        device = DeviceId(session.device_id)
        assert await broker.rejoin_session("user-someone-else", device, source_ip="127.0.0.1") is None
        assert await broker.rejoin_session("user-demo-tech", device, source_ip="127.0.0.77") is None
        events = [e for e in await system.audit_events() if e.session_id == session.id]
        assert [e.type for e in events].count("dwa.session.rejoined") == 2
        assert any(e.type == "dwa.session.rejoin_refused" and e.details["source_ip"] == "127.0.0.77"
                   for e in events)

        # ended, it moves to the history with how it ended
        await page.goto(system.portal_url + "/sessions")
        await live.get_by_role("button", name="End the session").click()
        await page.wait_for_url("**/sessions")
        ended = page.locator(f"#session-history tr[data-session-id='{session.id}']")
        await expect(ended).to_contain_text("ended by user")
        assert await broker.rejoin_session("user-demo-tech", device, source_ip="127.0.0.1") is None
    finally:
        await system.close_all_sessions(reason="test over")
        await context.close()

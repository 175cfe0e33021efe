"""Portal click -> policy -> agent -> SSH tunnel -> proxy -> printer page, in Chromium."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pyotp
from playwright.async_api import Browser, Page, expect

from lab.catalog import by_name
from printgate.cli.demo_system import DemoSystem
from tests.e2e.journey import enter_totp

PRINTER = by_name("jetdirect_m130nw")
PRINTGATE = str(Path(sys.executable).with_name("printgate"))


async def _sign_in(page: Page, system: DemoSystem, *, code: str | None = None) -> None:
    user = system.demo_user
    await page.goto(system.portal_url + "/login")
    await page.fill("input[name=email]", user.email)
    await page.fill("input[name=password]", user.password)
    await page.get_by_role("button", name="Sign in").click()
    if code is None:
        # an earlier test of the shared system may have signed the demo technician in with this
        # window's code, which is refused the second time: enter_totp then takes the next one
        await page.wait_for_url("**/login/verify**")
        await enter_totp(page, user)
        return
    await page.fill("input[name=code]", code)
    await page.get_by_role("button", name="Verify").click()


async def test_technician_opens_printer_page_through_tunnel_and_closes_it(
    system: DemoSystem, browser: Browser
) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await _sign_in(page, system)
    row = page.locator("tr", has_text=re.compile(re.escape(PRINTER.ip) + r"(?!\d)"))
    async with context.expect_page() as opened:  # the web page opens in a new tab
        await row.get_by_role("button", name="Open web page").click()
    page = await opened.value

    await page.wait_for_url(re.compile(r"^http://s-[0-9a-f]+\.dwa\.localhost:\d+/"), timeout=30_000)
    session_origin = re.match(r"^(http://s-[0-9a-f]+\.dwa\.localhost:\d+)", page.url)
    assert session_origin is not None
    origin = session_origin.group(1)
    # The page is the printer's own EWS, delivered through the tunnel and the proxy.
    await expect(page.locator("body")).to_contain_text(PRINTER.name)
    html = await page.content()
    assert PRINTER.ip not in html, "device address leaked into the page"
    hrefs = await page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    absolute = [h for h in hrefs if h.startswith("http")]
    assert absolute and all(h.startswith(origin) for h in absolute), hrefs

    # End the session from the banner; the host stops serving the device.
    await page.get_by_role("button", name=re.compile("end session", re.I)).click()
    await page.goto(origin + "/")
    await expect(page.locator("body")).to_contain_text(re.compile("session (has )?ended", re.I))
    assert PRINTER.name not in await page.content()

    kinds = [e.type for e in await system.audit_events()]
    for expected in ("policy.decision", "firewall.rule.added", "tunnel.opened",
                     "dwa.session.opened", "dwa.session.closed", "tunnel.closed"):
        assert expected in kinds, f"{expected} not audited: {kinds}"
    await context.close()

    # The trail verifies offline with only the public key (a security team's own check).
    verify = await asyncio.create_subprocess_exec(
        PRINTGATE, "audit", "verify",
        "--public-key", str(system.settings.gateway.data_dir / "audit-public.pem"),
        "--database-url", system.settings.database_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await verify.communicate()
    assert verify.returncode == 0, out.decode()


async def test_wrong_totp_code_is_refused_with_a_clear_message(
    system: DemoSystem, browser: Browser
) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    good = pyotp.TOTP(system.demo_user.totp_secret).now()
    wrong = f"{(int(good) + 500_000) % 1_000_000:06d}"
    await _sign_in(page, system, code=wrong)
    await expect(page.locator("body")).to_contain_text(re.compile("code", re.I))
    assert "Open web page" not in await page.content()
    await context.close()


async def test_reused_launch_token_and_closed_session_host_are_refused(
    system: DemoSystem, browser: Browser
) -> None:
    launch = await system.open_session_as_demo_user(PRINTER.ip)
    first = await browser.new_context()
    page = await first.new_page()
    await page.goto(launch)
    await expect(page.locator("body")).to_contain_text(PRINTER.name)

    second = await browser.new_context()
    thief = await second.new_page()
    response = await thief.goto(launch)
    assert response is not None and response.status in (401, 403, 410)
    assert PRINTER.name not in await thief.content()
    await expect(thief.locator("body")).to_contain_text(re.compile("(already used|invalid|expired)", re.I))

    origin = re.match(r"^(http://[^/]+)", launch)
    assert origin is not None
    await system.close_all_sessions(reason="test teardown")
    response = await page.goto(origin.group(1) + "/")
    assert response is not None and response.status in (403, 404, 410)
    await expect(page.locator("body")).to_contain_text(re.compile("session (has )?ended", re.I))
    await first.close()
    await second.close()


async def test_more_time_extends_a_live_session_within_policy(
    system: DemoSystem, browser: Browser
) -> None:
    launch = await system.open_session_as_demo_user(PRINTER.ip)
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(launch)
    await expect(page.locator("body")).to_contain_text(PRINTER.name)
    (session,) = system.cloud.broker.live_sessions_of("user-demo-tech")
    before = session.expires_at
    await asyncio.sleep(1.2)
    await page.get_by_role("button", name="More time").click()
    await expect(page.locator("#__printgate_msg")).to_have_text("More time granted")  # no reload
    await expect(page.locator("body")).to_contain_text(PRINTER.name)
    (extended,) = system.cloud.broker.live_sessions_of("user-demo-tech")
    assert extended.expires_at > before
    stored = await system.cloud.broker.get_session(extended.id)
    assert stored is not None and stored.expires_at == extended.expires_at
    events = [e for e in await system.audit_events() if e.session_id == extended.id]
    assert "dwa.session.extended" in [e.type for e in events]
    assert any(e.type == "policy.decision" and e.details.get("action") == "dwa.extend" for e in events)
    await system.close_all_sessions(reason="test done")
    await context.close()

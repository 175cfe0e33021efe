"""Issue 20 in Chromium on the real demo system: the printer raises alerts (its SNMP agent now
serves them; the readings go agent -> channel -> ingest), the site auto-approves while a critical
alert is open, the technician opens the web page from the alert, the session's reason is the alert,
the printer clears it mid-session and the banner says so; the auditor reads the reason in the story."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from lab.catalog import by_name
from printgate.cli.demo_system import DEMO_SITE, DemoSystem
from printgate.domain import AlertSeverity, Device, RemoteAccessMode
from printgate.store import fleet, tenants
from tests.e2e.conftest import report_alerts_now
from tests.e2e.journey import sign_in

PRINTER = by_name("jetdirect_m130nw")  # same identity as lab-jetdirect_m130nw-alerts
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "alert-sessions"
ALERT = "Paper jam in tray 2"  # a critical prtAlertTable row of the alerts recording


async def _open_alerts(system: DemoSystem, device: Device) -> list[str]:
    async with system.cloud.db.session() as s:
        return [a.alert.description for a in await fleet.open_alerts(s, device.id)]


async def _shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1366, 390):
        await page.set_viewport_size({"width": width, "height": 900})
        overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{name}: {overflow}px of horizontal scrolling at {width}px"
        await page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    await page.set_viewport_size({"width": 1366, "height": 900})


async def test_session_opened_from_an_alert_sees_the_alert_clear(system: DemoSystem, browser: Browser) -> None:
    device = await system.device_at(PRINTER.ip)
    async with system.cloud.db.transaction() as s:
        await tenants.set_site_access(s, DEMO_SITE.id, RemoteAccessMode.ALERT_AUTO, AlertSeverity.CRITICAL)
    _uid, tech_login = await system.add_technician("alerts-tech@demo.printgate.test")
    context = await browser.new_context()
    try:
        await system.snmp.swap(PRINTER.ip, "lab-jetdirect_m130nw-alerts")  # the printer jams
        await report_alerts_now(system, device)
        assert ALERT in await _open_alerts(system, device)

        page = await context.new_page()
        await sign_in(page, system, tech_login)
        await page.goto(f"{system.portal_url}/fleet/{device.id}")
        alert_row = page.locator("#open-alerts li", has_text=ALERT).first
        await expect(alert_row.get_by_role("button", name=re.compile("Open web page"))).to_be_visible()
        await _shoot(page, "fleet-device-alerts")
        async with context.expect_page() as opened:  # the web page opens in a new tab
            await alert_row.get_by_role("button", name=re.compile("Open web page")).click()
        ews = await opened.value
        await ews.wait_for_url(re.compile(r"^http://s-[0-9a-f]+\.dwa\.localhost:\d+/"), timeout=30_000)
        reason = ews.locator("#__printgate_reason")
        await expect(reason).to_contain_text(f"reason: alert '{ALERT}' (critical)")
        assert await ews.locator("#__printgate_reason_cleared").count() == 0
        await _shoot(ews, "banner-alert-open")
        (session,) = system.cloud.broker.live_sessions_of(_uid)
        assert session.reason is not None and session.reason.alert_description == ALERT

        # the jam is cleared at the printer: its next alerts reading no longer has it
        await system.snmp.swap(PRINTER.ip, PRINTER.name)
        await report_alerts_now(system, device)
        assert ALERT not in await _open_alerts(system, device)
        cleared = ews.locator("#__printgate_reason_cleared")
        for _ in range(40):  # the broker's reaper looks every second; the banner shows it on the next page
            await ews.reload()
            if await cleared.count():
                break
            await ews.wait_for_timeout(250)
        await expect(cleared).to_have_text(re.compile(r"^\(the alert cleared at \d\d:\d\d UTC\)$"))
        await _shoot(ews, "banner-alert-cleared")

        mine = await context.new_page()
        await mine.goto(system.portal_url + "/sessions")
        await expect(mine.locator("#live-sessions .session-reason")).to_contain_text(f"alert '{ALERT}' (critical)")
        await _shoot(mine, "my-sessions")
        await system.cloud.broker.close_session(session.id, reason="test done", actor="test")

        records = [e for e in await system.audit_events() if e.session_id == session.id]
        decision = next(e for e in records if e.type == "policy.decision")
        assert decision.details["allow"] and decision.details["session_reason"]["description"] == ALERT
        assert any(r["code"] == "customer.alert_open" for r in decision.details["reasons"])
        opened_record = next(e for e in records if e.type == "dwa.session.opened")
        assert opened_record.details["reason"]["alert_id"] == session.reason.alert_id
        assert [e.type for e in records].count("dwa.session.reason_cleared") == 1

        auditor = await (await browser.new_context()).new_page()
        await sign_in(auditor, system, system.accounts["auditor"])
        await auditor.goto(f"{system.portal_url}/audit/sessions/{session.id}/view")
        await expect(auditor.locator("#story-reason")).to_contain_text(f"Reason: alert '{ALERT}' (critical")
        await expect(auditor.locator("#story-reason")).to_contain_text("the alert cleared at")
        await _shoot(auditor, "auditor-story")
        await auditor.context.close()
    finally:
        await system.snmp.swap(PRINTER.ip, PRINTER.name)
        async with system.cloud.db.transaction() as s:
            await tenants.set_site_access(s, DEMO_SITE.id, None, AlertSeverity.CRITICAL)
        await context.close()

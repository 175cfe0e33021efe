"""Chromium (issue 20, a20a items 6 and 9): from the Devices page and the fleet overview, a device's alert
count opens its open alerts, each with "Open web page for this alert" (one click to a session whose
reason is that alert); long supply, alert and customer names wrap at 375 px instead of widening the
page, and the Customers table keeps its last column on screen. Screenshots (1366, 390, 375 px) go to
var/screenshots/alert-actions/."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from printgate.domain import Role
from printgate.store.models.readings import DeviceSupplyRow
from printgate.testing.portal import create_user, sign_in_page
from tests.portal.conftest import Portal
from tests.portal.test_alert_sessions import DEALER, _alert, _customer
from tests.portal.test_browser_dwa import browser, sign_in  # noqa: F401  (the session's Chromium)

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "alert-actions"
LONG_SUPPLY = "Black-Toner-Cartridge-HighYield-TN3480XL-OriginalManufacturerSupplyForTray2-Unit" * 2
LONG_ALERT = "Paper-jam-inside-the-duplex-unit-behind-the-rear-cover-of-tray-2-remove-paper" * 2


async def _no_sideways_scroll(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1366, 390, 375):
        await page.set_viewport_size({"width": width, "height": 900})
        wide = await page.evaluate("document.scrollingElement.scrollWidth")
        assert wide <= width, f"{name}: the page is {wide} px wide at {width} px"
        await page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    await page.set_viewport_size({"width": 1366, "height": 900})


async def test_one_click_from_an_alert_count_to_a_session_and_long_names_wrap(
    portal: Portal, browser  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    cid, _sid, did = await _customer(portal)
    async with portal.db.transaction() as s:
        s.add(DeviceSupplyRow(device_id=did, supply_index=1, description=LONG_SUPPLY, type="toner", colour="black",
                              unit="percent", max_capacity=100, level=3, state="known", percent=3.0,
                              taken_at=portal.clock() - timedelta(minutes=1)))
    await _alert(portal, did, severity="warning", description="Door open")
    jam = await _alert(portal, did, severity="critical", description=LONG_ALERT)
    tech, secret = await create_user(portal.db, Role.TECHNICIAN, dealer=DEALER)
    ctx = await browser.new_context(viewport={"width": 1366, "height": 900})
    try:
        page = await ctx.new_page()
        await sign_in(page, portal, tech.email, secret)
        row = page.locator(f"tr[data-device-id={did}]")
        await row.locator("details.alert-actions summary").click()  # "2 open"
        first = row.locator("details.alert-actions li").first
        assert LONG_ALERT in await first.inner_text()  # the most severe first
        await _no_sideways_scroll(page, "devices-alerts-open")
        async with ctx.expect_page() as opened:
            await first.get_by_role("button", name="Open web page for this alert").click()
        launched = await opened.value
        await launched.wait_for_url("**/sessions?launched=*")
        mine = await launched.locator(f"tr:has-text('{did[-6:]}') .session-reason").first.inner_text()
        assert f"Reason: alert '{LONG_ALERT}' (critical)" in mine
        decision = [e for e in portal.audit.of("policy.decision") if e.device_id == did][-1]
        assert decision.details["allow"] and decision.details["session_reason"]["alert_id"] == jam
        await launched.close()

        await page.goto(f"{portal.url}/fleet")
        frow = page.locator(f"tr[data-device-id={did}]")
        assert (await frow.locator("td.alerts").inner_text()).strip() == "2"  # closed: just the count
        await frow.locator("details.alert-actions summary").click()
        buttons = frow.get_by_role("button", name="Open web page for this alert")
        assert await buttons.count() == 2
        await _no_sideways_scroll(page, "fleet-alerts-open")
    finally:
        await ctx.close()

    admin, admin_secret = await create_user(portal.db, Role.CUSTOMER_ADMIN, dealer=None, customer=cid)
    actx = await browser.new_context(viewport={"width": 375, "height": 812})
    try:
        page = await actx.new_page()
        assert admin_secret is not None
        await sign_in_page(page, portal.url, admin.email, admin_secret, portal.clock)
        await page.goto(f"{portal.url}/admin/tenants")
        last = page.locator(f"tr[data-customer-id={cid}] td").last
        box = await last.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 375 + 0.5, box  # the last column on screen
        await _no_sideways_scroll(page, "customers")
    finally:
        await actx.close()


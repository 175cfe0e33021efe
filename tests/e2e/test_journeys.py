"""One journey per persona on the real system (lab LAN, cloud, agent, tunnel, proxy) in
Chromium: every page it passes is looked at by ``tests/e2e/journey.py`` (screenshots in
var/screenshots/<persona>/, no horizontal scroll at 375 and 1366 px, axe-core without
serious or critical violations)."""

from __future__ import annotations

import re

from playwright.async_api import Browser, BrowserContext, Page, expect

from lab.catalog import by_name
from printgate.cli.demo_system import DEMO_CUSTOMER, DemoSystem
from printgate.domain import RemoteAccessMode
from printgate.store import tenants
from tests.e2e.journey import SCREENSHOTS, look_at, sign_in

PRINTER = by_name("jetdirect_m880")
SESSION_HOST = re.compile(r"^http://s-[0-9a-f]+\.dwa\.localhost:\d+/")


async def _context(browser: Browser) -> BrowserContext:
    return await browser.new_context(viewport={"width": 1366, "height": 900})


async def _open_in_new_tab(context: BrowserContext, page: Page, button_name: str, row_text: str) -> Page:
    row = page.locator("tr", has_text=row_text)
    async with context.expect_page() as opened:
        await row.get_by_role("button", name=button_name).click()
    tab = await opened.value
    await tab.wait_for_load_state()
    return tab


async def _set_remote_access(system: DemoSystem, mode: str) -> None:
    async with system.cloud.db.transaction() as s:
        assert await tenants.set_remote_access(s, DEMO_CUSTOMER.id, RemoteAccessMode(mode)) is not None


async def test_technician_journey(system: DemoSystem, browser: Browser) -> None:
    context = await _context(browser)
    try:
        page = await context.new_page()
        await sign_in(page, system, system.accounts["technician"])
        await page.wait_for_url("**/devices")
        await look_at(page, "technician", "01-devices")
        await page.fill("#f-q", "M880")
        await page.get_by_role("button", name="Show").click()
        await expect(page.locator("tr[data-device-id]")).to_have_count(1)
        await look_at(page, "technician", "02-devices-search")
        await page.locator("a.device-name").first.click()  # the device's fleet detail
        await page.wait_for_url("**/fleet/*")
        await look_at(page, "technician", "02b-fleet-device")
        await page.goto(system.portal_url + "/fleet")
        await look_at(page, "technician", "02c-fleet")
        await page.goto(system.portal_url + "/devices?q=M880")

        printer = await _open_in_new_tab(context, page, "Open web page", "M880")
        await printer.wait_for_url(SESSION_HOST, timeout=30_000)
        await expect(printer.locator("body")).to_contain_text("M880")
        await printer.screenshot(path=str(SCREENSHOTS / "technician" / "03-printer-page-1366.png"))
        await printer.close()

        await page.goto(system.portal_url + "/sessions")
        await expect(page.locator("#live-sessions tr[data-session-id]")).to_have_count(1)
        await look_at(page, "technician", "04-my-sessions")
        await page.get_by_role("button", name="End the session").click()
        await page.wait_for_url("**/sessions")
        await expect(page.locator("#session-history tr[data-session-id]").first).to_contain_text("ended by the technician")
        await look_at(page, "technician", "05-my-sessions-history")
    finally:
        await system.close_all_sessions(reason="journey over")
        await context.close()


async def test_auditor_journey(system: DemoSystem, browser: Browser) -> None:
    await system.open_session_as_demo_user(PRINTER.ip)  # something to read: a whole session
    await system.close_all_sessions(reason="ended for the auditor's journey")
    context = await _context(browser)
    try:
        page = await context.new_page()
        await sign_in(page, system, system.accounts["auditor"])
        await page.wait_for_url("**/audit")
        await expect(page.locator("#f-customer option").first).to_have_text("All customers")
        await look_at(page, "auditor", "01-audit-log")
        await page.locator("a.session-link").first.click()
        await page.wait_for_url("**/audit/sessions/*/view")
        await expect(page.locator("#story-summary")).to_contain_text("Ended")
        await look_at(page, "auditor", "02-session-story")
        await page.goto(system.portal_url + "/audit?outcome=denied")
        await look_at(page, "auditor", "03-refusals")
        await page.goto(system.portal_url + "/devices")  # not an auditor's page: where to go instead
        await look_at(page, "auditor", "04-start-page")
    finally:
        await context.close()


async def test_dealer_admin_journey(system: DemoSystem, browser: Browser) -> None:
    context = await _context(browser)
    try:
        page = await context.new_page()
        await sign_in(page, system, system.accounts["dealer admin"])
        await page.wait_for_url("**/devices")
        await look_at(page, "dealer-admin", "01-devices")
        device = await page.locator("tr[data-device-id]").first.get_attribute("data-device-id")
        await page.goto(f"{system.portal_url}/admin/policy?preview_user=user-demo-tech&preview_device={device}")
        await expect(page.locator("#preview-result")).to_contain_text("Allowed")
        await look_at(page, "dealer-admin", "02-policy")
        await page.locator("#add-source_ip summary").click()
        await page.fill("#source_ip-id", "office-only")
        await page.fill("#ip-cidrs", "10.0.0.0/8")
        await page.locator("#add-source_ip").get_by_role("button", name="Preview").click()
        await expect(page.locator("#draft-notice")).to_be_visible()
        await expect(page.locator("#preview-result")).to_contain_text("Refused")
        await look_at(page, "dealer-admin", "03-policy-draft-preview")
        await page.goto(system.portal_url + "/admin/tenants")
        await look_at(page, "dealer-admin", "04-customers")
        await page.goto(system.portal_url + "/agents")
        await look_at(page, "dealer-admin", "05-agents")
        await page.get_by_role("button", name="Create enrolment token").first.click()
        await expect(page.locator("#enrol-command")).to_contain_text("--ca-cert agent-ca.crt")
        await expect(page.locator("#ca-fingerprint")).to_contain_text(":")
        await look_at(page, "dealer-admin", "06-enrolment-token")
        await page.goto(system.portal_url + "/admin/users")
        await look_at(page, "dealer-admin", "07-users")
        response = await page.goto(system.portal_url + "/audit")
        assert response is not None and response.status == 403
        await expect(page.locator("#error-message")).to_contain_text("this needs the auditor role")
        await look_at(page, "dealer-admin", "08-not-for-this-role")
    finally:
        await context.close()


async def test_customer_approver_journey(system: DemoSystem, browser: Browser) -> None:
    await _set_remote_access(system, "approval_required")
    tech_context, approver_context = await _context(browser), await _context(browser)
    try:
        tech = await tech_context.new_page()
        await sign_in(tech, system, system.accounts["technician"])
        await tech.wait_for_url("**/devices")
        request = await _open_in_new_tab(tech_context, tech, "Open web page", "M880")
        await expect(request.locator("h1")).to_have_text("Approval required — request access")
        await look_at(request, "customer-approver", "01-technician-asks")
        await request.fill("#reason", "scan-to-mail settings, ticket 4711")
        await request.get_by_role("button", name="Request access").click()
        await request.wait_for_url("**/approvals")
        row = request.locator("tr[data-approval-id]", has_text="ticket 4711")
        await expect(row.locator("td.state")).to_contain_text("pending")
        await look_at(request, "customer-approver", "02-technician-waits")

        approver = await approver_context.new_page()
        await sign_in(approver, system, system.accounts["customer approver"])
        await approver.goto(system.portal_url + "/approvals")
        decide = approver.locator("tr[data-approval-id]", has_text="ticket 4711")
        await expect(decide).to_contain_text("Demo Technician")
        await look_at(approver, "customer-approver", "03-approver-decides")
        await decide.get_by_label("Allow access for").select_option("30")
        await decide.get_by_role("button", name="Approve").click()
        await approver.wait_for_url("**/approvals")

        # the technician's page shows it without reloading, with the way in
        await expect(row.locator("td.state")).to_contain_text("approved until", timeout=15_000)
        await look_at(request, "customer-approver", "04-technician-approved")
        async with tech_context.expect_page() as opened:
            await row.get_by_role("button", name="Open web page").click()
        printer = await opened.value
        await printer.wait_for_url(SESSION_HOST, timeout=30_000)
        await expect(printer.locator("body")).to_contain_text("M880")
    finally:
        await _set_remote_access(system, "open")
        await system.close_all_sessions(reason="journey over")
        await tech_context.close()
        await approver_context.close()

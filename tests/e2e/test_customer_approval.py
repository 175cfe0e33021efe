"""Customer approval with the real system: refused with reasons, approved by the customer, opened."""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
from playwright.async_api import Browser, Page, expect

from lab.catalog import by_name
from portal.auth.passwords import hash_password
from printgate.cli.demo_system import DEMO_CUSTOMER, DemoSystem
from printgate.domain import CustomerId, Role, User, UserId
from printgate.store import tenants
from printgate.store.models.core import CustomerRow

PRINTER = by_name("brother_hl5370dw")
ADMIN_EMAIL, ADMIN_PASSWORD = "it@acme.example", "correct horse battery staple 42"


async def _sign_in(page: Page, url: str, email: str, password: str, totp_secret: str | None) -> None:
    await page.goto(url + "/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    await page.get_by_role("button", name="Sign in").click()
    if totp_secret is not None:
        await page.fill("input[name=code]", pyotp.TOTP(totp_secret).now())
        await page.get_by_role("button", name="Verify").click()


async def test_customer_admin_approval_opens_a_refused_technicians_session(
    tmp_path: Path, browser: Browser
) -> None:
    async with DemoSystem(tmp_path, log_level="warning") as system:
        await system.wait_for_devices(minimum=1, timeout=90)
        async with system.cloud.db.transaction() as s:
            customer = await s.get(CustomerRow, DEMO_CUSTOMER.id)
            assert customer is not None
            customer.remote_access = "approval_required"
            await tenants.add_user(
                s, User(UserId("user-acme-it"), ADMIN_EMAIL, "Acme IT", frozenset({Role.CUSTOMER_ADMIN}),
                        customer_id=CustomerId(DEMO_CUSTOMER.id)),
                password_hash=hash_password(ADMIN_PASSWORD),
            )
        tech_context = await browser.new_context()
        tech = await tech_context.new_page()
        user = system.demo_user
        await _sign_in(tech, system.portal_url, user.email, user.password, user.totp_secret)
        row = tech.locator("tr", has_text=re.compile(re.escape(PRINTER.ip) + r"(?!\d)"))
        async with tech_context.expect_page() as opened:  # the web page opens in a new tab
            await row.get_by_role("button", name="Open web page").click()
        tech = await opened.value
        await tech.wait_for_selector("h1:has-text('Approval required — request access')")
        reasons = " ".join(await tech.locator("#reasons li").all_text_contents())  # folded away
        assert "customer.approval_required" in reasons
        await tech.fill("[name=reason]", "paper jam 13.B2")
        await tech.get_by_role("button", name="Request access").click()
        await tech.wait_for_url("**/approvals")

        admin = await (await browser.new_context()).new_page()
        await _sign_in(admin, system.portal_url, ADMIN_EMAIL, ADMIN_PASSWORD, None)
        await admin.goto(system.portal_url + "/approvals")
        request_row = admin.locator("tr", has_text="paper jam 13.B2")
        await request_row.get_by_label("Allow access for").select_option("30")
        await request_row.get_by_role("button", name="Approve").click()
        await admin.wait_for_url("**/approvals")

        await tech.goto(system.portal_url + "/devices")
        row = tech.locator("tr", has_text=re.compile(re.escape(PRINTER.ip) + r"(?!\d)"))
        async with tech_context.expect_page() as opened:
            await row.get_by_role("button", name="Open web page").click()
        tech = await opened.value
        await tech.wait_for_url(re.compile(r"^http://s-[0-9a-f]+\.dwa\.localhost:\d+/"), timeout=30_000)
        await expect(tech.locator("body")).to_contain_text(PRINTER.name)

        decisions = [e for e in await system.audit_events() if e.type == "policy.decision"]
        denied = [e.seq for e in decisions if not e.details["allow"] and any(
            r["code"] == "customer.approval_required" for r in e.details["reasons"])]
        allowed = [e.seq for e in decisions if e.details["allow"]]
        assert denied and allowed and max(allowed) > min(denied)
        assert any(e.type == "approval.approved" for e in await system.audit_events())

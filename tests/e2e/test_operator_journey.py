"""The operator's journey in Chromium: the first dealer made from the shell (``printgate admin
create-dealer``), its administrator following the one-use link (choose a password, sign in,
set up an authenticator, keep the recovery codes) and adding the first customer; each page
looked at like the other personas' (tests/e2e/journey.py)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pyotp
from playwright.async_api import Browser, expect

from printgate.cli.demo_system import DemoSystem
from tests.e2e.journey import look_at

PRINTGATE = str(Path(sys.executable).with_name("printgate"))


async def test_operator_first_dealer_and_its_administrators_first_sign_in(
        system: DemoSystem, browser: Browser) -> None:
    suffix = uuid.uuid4().hex[:6]
    email = f"ada-{suffix}@journey-print.example"
    env = {**os.environ, "PRINTGATE_DATABASE_URL": system.settings.database_url,
           "PRINTGATE_PORTAL__PUBLIC_URL": system.portal_url}
    proc = await asyncio.create_subprocess_exec(
        PRINTGATE, "admin", "create-dealer", f"Journey Print {suffix}", "--admin-email", email,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    link = out.decode().strip().splitlines()[-1]
    assert link.startswith(system.portal_url + "/invite/")

    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    try:
        page = await context.new_page()
        await page.goto(link)
        await look_at(page, "operator", "01-invitation")
        await page.fill("#display_name", "Ada Admin")
        await page.fill("#password", "a long first-hour password")
        await page.get_by_role("button", name="Set password").click()
        await page.wait_for_url("**/login?password_set=1")
        await expect(page.locator("#password-set")).to_contain_text("Password set — sign in")
        await look_at(page, "operator", "02-sign-in")
        await page.fill("#email", email)
        await page.fill("#password", "a long first-hour password")
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url("**/mfa/enrol**")
        await look_at(page, "operator", "03-authenticator")
        secret = await page.locator("#totp-secret").inner_text()
        await page.fill("#code", pyotp.TOTP(secret).now())
        await page.get_by_role("button", name="Verify").click()
        await expect(page.locator("#recovery-codes li")).not_to_have_count(0)
        await look_at(page, "operator", "04-recovery-codes")
        await page.get_by_role("link", name="Continue").click()
        await page.goto(system.portal_url + "/admin/tenants")
        await page.get_by_label("customer name").fill("Contoso Offices")
        await page.get_by_role("button", name="Add customer").click()
        await expect(page.locator("tr[data-customer-id]")).to_contain_text("Contoso Offices")
        await look_at(page, "operator", "05-first-customer")
    finally:
        await context.close()

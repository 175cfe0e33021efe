"""Chromium: a refused technician sees the reasons; a customer admin approves;
the technician's session opens (fake broker wired to the real policy)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import pytest

from printgate.domain import Role
from printgate.testing.portal import create_user, sign_in_page
from tests.portal.conftest import Portal

pytestmark = pytest.mark.browser

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    if shutil.which("chromium") is None and not os.environ.get("CI"):
        pytest.skip("chromium not installed")
    from playwright.async_api import async_playwright
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        yield b
        await b.close()


async def sign_in(page, portal: Portal, email: str, secret: str | None) -> None:  # type: ignore[no-untyped-def]
    await sign_in_page(page, portal.url, email, secret or None, portal.clock)
    await page.wait_for_url("**/devices")


async def test_refused_technician_sees_reasons_admin_approves_and_session_opens(
    portal: Portal, browser  # type: ignore[no-untyped-def]
) -> None:
    tech, secret = await create_user(portal.db, Role.TECHNICIAN)
    admin, _ = await create_user(portal.db, Role.CUSTOMER_ADMIN, dealer=None, customer="c-appr", totp=False)
    tctx = await browser.new_context()
    actx = await browser.new_context()
    try:
        devices = await tctx.new_page()
        await sign_in(devices, portal, tech.email, secret)
        row = devices.locator("tr", has_text="Finance MFP")
        async with tctx.expect_page() as opened:  # the web page opens in a new tab
            await row.get_by_role("button", name="Open web page").click()
        page = await opened.value
        await page.wait_for_selector("h1:has-text('Approval required — request access')")
        await page.get_by_text("The policy's reasons").click()  # the reasons, folded away
        reasons = page.locator("#reasons li")
        text = " ".join(await reasons.all_inner_texts())
        assert "requires approval by one of its administrators" in text
        assert "customer.approval_required" in text
        await page.fill("[name=reason]", "toner error E-42")
        await page.get_by_role("button", name="Request access").click()
        await page.wait_for_url("**/approvals")
        assert "pending" in await page.locator("td.state").first.inner_text()

        apage = await actx.new_page()
        await sign_in(apage, portal, admin.email, None)
        await apage.goto(f"{portal.url}/approvals")
        arow = apage.locator("tr", has_text="toner error E-42")
        await arow.get_by_label("Allow access for").select_option("30")
        await arow.get_by_role("button", name="Approve").click()
        await apage.wait_for_url("**/approvals")
        assert "approved" in await apage.locator("tr", has_text="toner error E-42").locator("td.state").inner_text()

        await page.goto(f"{portal.url}/devices")
        async with tctx.expect_page() as opened:
            await page.locator("tr", has_text="Finance MFP").get_by_role("button", name="Open web page").click()
        page = await opened.value
        await page.wait_for_url("**/sessions?launched=*")
        live = page.locator("#live-sessions tr[data-session-id]")
        assert await live.count() == 1
        assert "Finance MFP" in await live.inner_text()
        # the technician ends it; it moves to the history with how it ended
        await page.get_by_role("button", name="End the session").click()
        await page.wait_for_url("**/sessions")
        assert await page.locator("#live-sessions tr[data-session-id]").count() == 0
        assert "ended by the technician" in await page.locator("#session-history tr[data-session-id]").first.inner_text()
    finally:
        await tctx.close()
        await actx.close()
    assert portal.audit.of("approval.approved")
    decisions = [e for e in portal.audit.of("policy.decision") if e.actor == tech.email]
    assert [e.details["allow"] for e in decisions] == [False, True]


async def test_device_of_another_dealer_or_never_customer_is_refused_with_reasons(
    portal: Portal, browser  # type: ignore[no-untyped-def]
) -> None:
    tech, secret = await create_user(portal.db, Role.TECHNICIAN)
    ctx = await browser.new_context()
    try:
        devices = await ctx.new_page()
        await sign_in(devices, portal, tech.email, secret)
        async with ctx.expect_page() as opened:
            await devices.locator("tr", has_text="Lab plotter").get_by_role("button", name="Open web page").click()
        page = await opened.value
        await page.wait_for_selector("#reasons")
        assert await page.locator("#reasons li[data-code='customer.remote_access_never']").count() == 1
        # a guessed id of another dealer's device, posted with a valid CSRF token
        await page.goto(f"{portal.url}/devices")
        token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
        resp = await page.request.post(f"{portal.url}/devices/dev-c-other/open",
                                       form={"csrf_token": token or ""}, max_redirects=0)
        assert resp.status == 403
        body = await resp.text()
        assert "ownership.other_tenant" in body and "Other dealer printer" not in body
    finally:
        await ctx.close()

"""The navigation bar shows each role the pages it can use, and fits a 375 px phone (wraps, never
cut off), in headless Chromium."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from printgate.domain import Role
from printgate.testing.portal import PASSWORD, create_user, rfc6238
from tests.portal.conftest import Portal
from tests.portal.test_browser_dwa import browser  # noqa: F401  (the shared Chromium fixture)

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("PRINTGATE_SHOTS")


async def _signed_in_page(chromium: Any, portal: Portal, *roles: Role, customer: str | None = None,
                          width: int = 1366) -> Any:
    user, secret = await create_user(portal.db, *roles, dealer=None if customer else "d1", customer=customer)
    context = await chromium.new_context(viewport={"width": width, "height": 800})
    page = await context.new_page()
    await page.goto(f"{portal.url}/login")
    await page.fill("input[name=email]", user.email)
    await page.fill("input[name=password]", PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/login/verify**")
    await page.fill("input[name=code]", rfc6238(secret, portal.clock()))
    await page.get_by_role("button", name="Verify").click()
    await page.wait_for_function("!location.pathname.startsWith('/login')")
    return page


async def _menu(page: Any) -> list[str]:
    return list(await page.eval_on_selector_all("nav[aria-label=main] a", "els => els.map(a => a.innerText)"))


@pytest.mark.parametrize(("roles", "customer", "present", "absent"), [
    ((Role.DEALER_ADMIN,), None, {"Device credentials", "Customers", "My sessions", "Approvals"}, set()),
    ((Role.CUSTOMER_ADMIN,), "c-open", {"Device credentials", "Customers", "Approvals"}, set()),
    ((Role.AUDITOR,), None, {"Audit"}, {"My sessions", "Approvals", "Device credentials"}),
    ((Role.TECHNICIAN,), None, {"My sessions", "Approvals"}, {"Device credentials", "Customers"}),
], ids=["dealer_admin", "customer_admin", "auditor", "technician"])
async def test_menu_shows_the_pages_of_the_role(browser: Any, portal: Portal, roles: tuple[Role, ...],  # noqa: F811
                                                customer: str | None, present: set[str], absent: set[str]) -> None:
    page = await _signed_in_page(browser, portal, *roles, customer=customer)
    try:
        menu = set(await _menu(page))
        assert present <= menu, menu
        assert not absent & menu, menu
        if "Device credentials" in menu:
            resp = await page.goto(f"{portal.url}/credentials")
            assert resp.status == 200
    finally:
        await page.context.close()


@pytest.mark.parametrize("width", [375, 1366])
async def test_menu_wraps_instead_of_being_cut(browser: Any, portal: Portal, width: int) -> None:  # noqa: F811
    page = await _signed_in_page(browser, portal, Role.DEALER_ADMIN, width=width)
    try:
        for path in ("/devices", "/admin/users", "/no/such/page"):
            await page.goto(portal.url + path)
            boxes = await page.eval_on_selector_all(
                "nav[aria-label=main] a", "els => els.map(a => { const r = a.getBoundingClientRect();"
                " return [a.innerText, r.left, r.right]; })")
            assert len(boxes) >= 8
            nav_right = await page.evaluate("document.querySelector('header nav').getBoundingClientRect().right")
            for text, left, right in boxes:  # inside the window and not scrolled away inside the menu
                assert left >= 0 and right <= min(width, nav_right + 1), (path, text, left, right, nav_right)
            assert await page.evaluate("document.querySelector('header nav').scrollWidth") <= width
            assert await page.evaluate("document.querySelector('header').scrollWidth") <= width
            assert await page.evaluate("document.documentElement.scrollWidth") <= width, path  # no sideways page
            who = await page.evaluate("""(() => { const s = document.querySelector('header .account-menu summary');
                const r = s.getBoundingClientRect();
                return [s.innerText, s.scrollWidth, s.clientWidth, r.left, r.right]; })()""")
            assert who[0].startswith("User ") and who[1] <= who[2] + 1, (path, who)  # the name is not cut
            assert 0 <= who[3] and who[4] <= width, (path, who)
            wider = await page.evaluate("""[...document.querySelectorAll('main table.cards tr')]
                .filter(tr => tr.getBoundingClientRect().right > document.querySelector('main')
                              .getBoundingClientRect().right + 1)
                .map(tr => tr.innerText.slice(0, 40) + ' ' + tr.getBoundingClientRect().right)""")
            assert wider == [], (path, wider)  # card tables never scroll sideways
            if SHOTS:
                name = path.strip("/").replace("/", "_") or "root"
                await page.screenshot(path=str(Path(SHOTS) / f"portal-{name}-375.png"))
                await page.set_viewport_size({"width": 1366, "height": 800})
                await page.screenshot(path=str(Path(SHOTS) / f"portal-{name}-1366.png"))
                await page.set_viewport_size({"width": 375, "height": 800})
    finally:
        await page.context.close()


@pytest.mark.parametrize("path", ["/admin/policy", "/fleet", "/devices", "/admin/tenants", "/admin/users",
                                  "/credentials", "/no/such/page"])
async def test_admin_pages_have_no_serious_accessibility_violations(browser: Any, portal: Portal,  # noqa: F811
                                                                    path: str) -> None:
    from axe_playwright_python.async_playwright import Axe

    page = await _signed_in_page(browser, portal, Role.DEALER_ADMIN)
    try:
        await page.goto(portal.url + path)
        await page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        results = await Axe().run(page)
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:5])
               for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        assert bad == [], bad
    finally:
        await page.context.close()

"""The fleet table on a phone (issue 15): one card per device with the name, status, alerts and
lowest supply first, no horizontal scrolling at 375 px; the desktop table keeps every column.
Screenshots at 375 and 1366 px go to var/screenshots/fleet/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from printgate.domain import Role
from printgate.testing.portal import create_user, sign_in_page
from tests.fleet.test_fleet_browser import ARGS, served  # noqa: F401  (the served fleet portal)

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "fleet"


async def test_fleet_cards_on_a_phone_show_name_status_alerts_supply_first(served) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    if shutil.which("chromium") is None and not os.environ.get("CI"):
        pytest.skip("chromium not installed")
    from playwright.async_api import async_playwright
    base, fp = served
    user, secret = await create_user(fp.db, Role.TECHNICIAN)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            ctx = await browser.new_context(viewport={"width": 375, "height": 812})
            page = await ctx.new_page()
            await sign_in_page(page, base, user.email, secret, fp.clock, next_path="/fleet")

            width = await page.evaluate("document.scrollingElement.scrollWidth")
            assert width <= 375, f"the fleet page scrolls sideways at 375 px ({width} px wide)"
            table_scrolls = await page.locator("table.fleet").evaluate("t => t.scrollWidth > t.clientWidth + 1")
            assert not table_scrolls, "the fleet table scrolls sideways inside itself at 375 px"
            row = page.locator("tr[data-device-id=dev-m130]")
            boxes = {}
            for cell in ("td.device", "td.status", "td.alerts", "td.supply", "td.customer", "td.pages"):
                box = await row.locator(cell).bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375 + 0.5, (cell, box)
                boxes[cell] = box
            order = [boxes[c]["y"] for c in ("td.device", "td.status", "td.supply", "td.customer")]
            assert order == sorted(order) and len(set(order)) == len(order), boxes  # name, status, supply, rest
            assert boxes["td.alerts"]["y"] < boxes["td.supply"]["y"]  # alerts beside the status, before supply
            assert boxes["td.pages"]["y"] > boxes["td.supply"]["y"]
            label = await row.locator("td.status").evaluate("td => getComputedStyle(td, '::before').content")
            assert "Status" in label  # each cell is labelled in the card
            await page.screenshot(path=str(SCREENSHOTS / "fleet-375.png"), full_page=True)

            await page.set_viewport_size({"width": 1366, "height": 900})
            headers = [h.strip() for h in await page.locator("table.fleet thead th").all_inner_texts()]
            assert headers[:4] == ["Device", "Status", "Alerts", "Lowest supply"] and len(headers) == 8
            assert await page.evaluate("document.scrollingElement.scrollWidth") <= 1366
            await page.screenshot(path=str(SCREENSHOTS / "fleet-1366.png"), full_page=True)
        finally:
            await browser.close()


async def test_fleet_detail_keeps_a_supply_level_on_one_line_on_a_phone(served) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """Issue 15: "1 %" wrapped between the number and the sign in the detail page's Level column."""
    if shutil.which("chromium") is None and not os.environ.get("CI"):
        pytest.skip("chromium not installed")
    from playwright.async_api import async_playwright
    base, fp = served
    user, secret = await create_user(fp.db, Role.TECHNICIAN)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 375, "height": 812})).new_page()
            await sign_in_page(page, base, user.email, secret, fp.clock, next_path="/fleet/dev-m130")
            levels = await page.eval_on_selector_all("#supplies td.level", "tds => tds.map(td => td.textContent)")
            with_percent = [t for t in levels if "%" in t]
            assert with_percent, levels
            assert all(" %" not in t and "\u00a0%" in t for t in with_percent), with_percent
        finally:
            await browser.close()

"""The Devices page on a phone (issue 20, a20c): on a device with the technician's live session the
"Rejoin web page" button and the "your session" badge stay inside the card at 375 px (they stuck
out at 378 px). Real Chromium; screenshots at 375 and 1366 px go to var/screenshots/devices/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from printgate.domain import Role
from printgate.testing.portal import create_user, csrf_of, sign_in_page
from tests.fleet.test_fleet_browser import ARGS
from tests.portal.conftest import Portal
from tests.portal.test_alert_sessions import DEALER, _customer

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "devices"


async def test_the_rejoin_button_stays_in_its_card_at_375_px(portal: Portal) -> None:
    if shutil.which("chromium") is None and not os.environ.get("CI"):
        pytest.skip("chromium not installed")
    from playwright.async_api import async_playwright
    _cid, _sid, did = await _customer(portal)
    user, secret = await create_user(portal.db, Role.TECHNICIAN, dealer=DEALER)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 375, "height": 812})).new_page()
            await sign_in_page(page, portal.url, user.email, secret, portal.clock, next_path="/devices")
            token = csrf_of(await page.content())
            r = await page.request.post(f"{portal.url}/devices/{did}/open", max_redirects=0,
                                        form={"reason": "toner change", "csrf_token": token})
            assert r.status == 303, (await r.text())[:300]
            await page.goto(f"{portal.url}/devices")
            row = page.locator(f"tr[data-device-id={did}]")
            button = row.get_by_role("button", name="Rejoin web page")
            assert await button.count() == 1
            card = await row.bounding_box()
            assert card is not None
            for what in (button, row.locator("p.own-session")):
                box = await what.bounding_box()
                assert box is not None and box["x"] >= card["x"] - 0.5 \
                    and box["x"] + box["width"] <= card["x"] + card["width"] + 0.5, (what, box, card)
            width = await page.evaluate("document.scrollingElement.scrollWidth")
            assert width <= 375, f"the Devices page scrolls sideways at 375 px ({width} px wide)"
            await row.scroll_into_view_if_needed()
            await page.screenshot(path=str(SCREENSHOTS / "devices-rejoin-375.png"), full_page=True)
            await page.set_viewport_size({"width": 1366, "height": 900})
            assert await page.evaluate("document.scrollingElement.scrollWidth") <= 1366
            await page.screenshot(path=str(SCREENSHOTS / "devices-rejoin-1366.png"), full_page=True)
        finally:
            await browser.close()

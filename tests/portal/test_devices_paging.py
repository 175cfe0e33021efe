"""Issue 17 finding 4: /devices (where users land after sign-in) shows one page of devices with
the count of all that match, and Previous/Next keep the search and filters (a dealer with 20,011
devices got all of them: 26 MB of HTML that Chromium never finished). Real Chromium draws the
first page; screenshot in var/screenshots/devices/."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest

from portal.routers.devices import PAGE_SIZE
from printgate.domain import DeviceIdentity, Role
from printgate.testing.portal import create_user, sign_in, sign_in_page
from printgate.testing.tenancy import Tenancy
from tests.fleet.test_fleet_browser import ARGS
from tests.portal.conftest import Portal

DEALER = "d-f17-pages"
N = 2 * PAGE_SIZE + 30
ROW = re.compile(r'<tr data-device-id="([^"]+)">')
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "devices"


async def _many(portal: Portal) -> None:
    t = Tenancy().dealer(DEALER)
    for c in range(2):
        t.customer(f"c-f17-{c}", DEALER, name=f"Paged customer {c}").site(f"s-f17-{c}", f"c-f17-{c}", "HQ")
        t.agent(f"a-f17-{c}", f"s-f17-{c}", online=True)
    for i in range(N):
        c = i % 2
        t.device(f"dev-f17-{i:04d}", f"s-f17-{c}", f"a-f17-{c}", f"10.17.{i // 250}.{i % 250 + 1}",
                 DeviceIdentity(serial=f"SN-F17-{i:04d}", model="Paged model"), name=f"Paged printer {i:04d}")
    await t.save(portal.db)


async def test_devices_come_a_page_at_a_time_with_the_count_of_all_and_filters_kept(
    portal: Portal, client: httpx.AsyncClient,
) -> None:
    await _many(portal)
    user, secret = await create_user(portal.db, Role.TECHNICIAN, dealer=DEALER)
    await sign_in(client, portal, user, secret)
    first = (await client.get("/devices")).text
    assert len(ROW.findall(first)) == PAGE_SIZE
    assert f"{N} of {N} devices" in first and "Page 1 of 3" in first
    seen: list[str] = []
    for page in (1, 2, 3):
        html = (await client.get("/devices", params={"page": str(page)})).text
        seen += ROW.findall(html)
    assert len(seen) == N and len(set(seen)) == N  # every device once over the pages
    last = (await client.get("/devices", params={"page": "99"})).text  # past the end: the last page
    assert len(ROW.findall(last)) == N - 2 * PAGE_SIZE
    # a filter: the count and the pager follow it, and the Next link keeps it
    narrowed = (await client.get("/devices", params={"customer": "c-f17-1"})).text
    assert f"{N // 2} of {N} devices match" in narrowed
    nxt = re.search(r'<a href="([^"]+)" rel="next">', narrowed)
    assert nxt is not None and "customer=c-f17-1" in nxt.group(1) and "page=2" in nxt.group(1)
    rest = (await client.get(nxt.group(1).replace("&amp;", "&"))).text
    assert len(ROW.findall(rest)) == N // 2 - PAGE_SIZE
    assert all(int(d[-4:]) % 2 == 1 for d in ROW.findall(rest))
    one = (await client.get("/devices", params={"q": "SN-F17-0007"})).text
    assert ROW.findall(one) == ["dev-f17-0007"] and "devices-pager" not in one

    if shutil.which("chromium") is None and not os.environ.get("CI"):
        pytest.skip("chromium not installed")
    from playwright.async_api import async_playwright
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    user, secret = await create_user(portal.db, Role.TECHNICIAN, dealer=DEALER)  # a TOTP code is used once
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1366, "height": 900})).new_page()
            await sign_in_page(page, portal.url, user.email, secret, portal.clock, next_path="/devices")
            assert await page.locator("tr[data-device-id]").count() == PAGE_SIZE
            await page.get_by_role("link", name="Next →").click()
            await page.wait_for_url(re.compile(r"page=2"))
            assert await page.locator("tr[data-device-id]").count() == PAGE_SIZE
            assert "Page 2 of 3" in await page.locator("#devices-pager").inner_text()
            await page.screenshot(path=str(SCREENSHOTS / "devices-paged-1366.png"), full_page=False)
            await page.locator("#devices-pager").scroll_into_view_if_needed()
            await page.screenshot(path=str(SCREENSHOTS / "devices-pager-1366.png"), full_page=False)
        finally:
            await browser.close()

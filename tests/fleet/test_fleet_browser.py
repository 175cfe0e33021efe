"""The device page in headless Chromium with every request not to the portal
aborted: it renders offline, charts are inline SVG, special levels are words."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fleet.ingest import ingest_payload
from lab.ports import free_tcp_port
from printgate.domain import Role
from printgate.store.db import Database, migrate
from printgate.testing.portal import create_user, sign_in_page
from printgate.testing.portal import served as serve_app
from tests.fleet.conftest import T0, days, fleet_app, payload_of, reading_of, seed_fleet

pytestmark = pytest.mark.browser

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, object]]:
    url = f"sqlite+aiosqlite:///{tmp_path}/fleet.db"
    await migrate(url)
    db = Database(url)
    await seed_fleet(db)
    readings = [reading_of("jetdirect_m130nw" if i < 3 else "lab-jetdirect_m130nw-alerts",
                           ip="127.0.20.15", at=T0 + days(i)) for i in range(4)]
    assert await ingest_payload(db, "a-c1", "b-1", payload_of(readings))
    assert await ingest_payload(db, "a-c2", "b-2", payload_of(
        [reading_of("brother_hl5370dw", ip="127.0.20.11", at=T0 + days(i)) for i in range(3)]))
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    fp = fleet_app(db, base)
    fp.clock.offset = T0 + days(4) - fp.clock()
    try:
        async with serve_app(fp.app, port):  # type: ignore[arg-type]
            yield base, fp
    finally:
        await db.aclose()


async def test_device_page_renders_offline_with_svg_charts_and_alerts(served) -> None:  # type: ignore[no-untyped-def]
    if shutil.which("chromium") is None and not os.environ.get("CI"):
        pytest.skip("chromium not installed")
    from playwright.async_api import Route, async_playwright
    base, fp = served
    user, secret = await create_user(fp.db, Role.TECHNICIAN)
    blocked: list[str] = []

    async def only_portal(route: Route) -> None:
        if route.request.url.startswith(base + "/"):
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort()

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            ctx = await browser.new_context()
            await ctx.route("**/*", only_portal)
            page = await ctx.new_page()
            failed: list[str] = []
            page.on("requestfailed", lambda r: failed.append(r.url))
            console_errors: list[str] = []
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            await sign_in_page(page, base, user.email, secret, fp.clock, next_path="/fleet")
            row = page.locator("tr[data-device-id=dev-m130]")
            assert "online" in await row.locator("td.agent").inner_text()
            assert (await row.locator("td.alerts").inner_text()).strip() == "5"  # 3 printer + 2 error states
            lowest = await page.locator("tr[data-device-id=dev-brother] td.supply").inner_text()
            assert lowest.endswith("%") and "-" not in lowest.split(":")[-1]
            await row.locator("td.device a").click()  # the customer cell links too (its devices)
            await page.wait_for_url("**/fleet/dev-m130")

            for chart in ("#counter-chart", "#supply-chart"):
                svg = page.locator(f"svg{chart}")
                await svg.wait_for()
                box = await svg.bounding_box()
                assert box is not None and box["width"] > 200 and box["height"] > 100
                assert await svg.locator("polyline").count() >= 1
            assert await page.locator("#supply-chart g.series").count() == 2  # the M130's two supplies
            alerts = await page.locator("#open-alerts li").all_inner_texts()
            assert len(alerts) == 5 and any("Paper jam in tray 2" in a for a in alerts)
            # the stylesheet from the portal applied (no CDN needed)
            display = await page.locator("dl.facts").evaluate("e => getComputedStyle(e).display")
            assert display == "grid"

            await page.goto(f"{base}/fleet/dev-brother")
            levels = await page.locator("#supplies td.level").all_inner_texts()
            assert any(t.startswith("some remaining") for t in levels)
            assert not any(t.strip().startswith("-") for t in levels)
            assert blocked == [] and failed == []
            # base.html's header (not this page) carries one inline style attribute the CSP blocks
            assert [e for e in console_errors if "Applying inline style" not in e] == []
            main_html = (await page.content()).split("<main>", 1)[1]
            assert 'style="' not in main_html
        finally:
            await browser.close()

"""The proxy's own pages (blocked, ended, not signed in, no such session) in headless Chromium:
plain words, links back to the portal and to My sessions, the rule code small, no sideways
scrolling at 375 px."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from lab.ews import EwsLab, EwsServer
from tests.proxy.conftest import PORTAL_URL, launch

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("PRINTGATE_SHOTS", "")) if os.environ.get("PRINTGATE_SHOTS") else None


@pytest.fixture
def ews(ews_lab: EwsLab) -> EwsServer:
    return ews_lab["jetdirect_m130nw"]


async def _check_page(page: Any, name: str, heading: str, support_code: str) -> None:
    assert (await page.inner_text("h1")) == heading
    links = await page.eval_on_selector_all("nav a", "els => els.map(a => [a.innerText, a.getAttribute('href')])")
    assert ["My sessions", PORTAL_URL + "/sessions"] in links
    assert ["printgate portal", PORTAL_URL + "/devices"] in links
    code = page.locator("p.code")
    assert (await code.inner_text()) == f"Reference for support: {support_code}"
    body_size = await page.evaluate("parseFloat(getComputedStyle(document.querySelector('main p')).fontSize)")
    code_size = await code.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert code_size < body_size  # the rule code is for support, not the message
    first = await page.inner_text("main p")
    assert "rule" not in first.lower()
    for width in (1366, 375):
        await page.set_viewport_size({"width": width, "height": 800})
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        if SHOTS:
            await page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)


async def test_fresh_browser_without_cookie_gets_a_page_pointing_to_my_sessions(browser, harness, ews):
    route = harness.open_session(ews)
    context = await browser.new_context()
    try:
        page = await context.new_page()
        resp = await page.goto(harness.proxy.session_origin(route.session_id) + "/")
        assert resp.status == 401
        await _check_page(page, "no-cookie", "Not signed in to this session", "session.unauthenticated")
        assert "rejoin it from My sessions" in await page.inner_text("main")
    finally:
        await context.close()


async def test_blocked_firmware_upload_page_explains_and_links_back(page, harness, ews, tmp_path):
    route = harness.open_session(ews)
    origin = await launch(page, harness, route)
    fw = tmp_path / "fw.bin"
    fw.write_bytes(bytes(range(256)) * 100)
    await page.goto(origin + "/firmware")
    await page.set_input_files("#firmware-file", str(fw))
    await page.click("#firmware-submit")
    await page.wait_for_selector("text=Blocked by policy")
    code = await page.inner_text("p.code")
    assert code.startswith("Reference for support: ")
    await _check_page(page, "blocked", "Blocked by policy", code.removeprefix("Reference for support: "))
    assert await page.locator("nav a", has_text="Back to the device page").count() == 1


async def test_ended_session_page_links_to_portal(page, harness, ews):
    route = harness.open_session(ews)
    origin = await launch(page, harness, route)
    await page.click("#__printgate_end")
    await page.wait_for_selector("text=Remote session ended")
    resp = await page.goto(origin + "/status")
    assert resp.status == 410
    await _check_page(page, "ended", "Remote session ended", "session.ended")
    assert "ended by the technician" in await page.inner_text("main p")


async def test_unknown_session_host_page_links_to_portal(page, harness):
    resp = await page.goto(harness.proxy.session_origin("0000000000000000") + "/")
    assert resp.status == 404
    await _check_page(page, "unknown", "No such session", "session.unknown_host")


@pytest.mark.parametrize("width", [375, 1366])
async def test_banner_shows_the_whole_device_name_and_one_line_buttons(page, harness, ews, width):
    route = harness.open_session(ews)
    await page.set_viewport_size({"width": width, "height": 800})
    await launch(page, harness, route)
    await page.wait_for_selector("#__printgate_bar")
    bar = await page.evaluate("""() => {
        const box = e => { const r = document.getElementById(e).getBoundingClientRect();
                           return {left: r.left, right: r.right, top: r.top, height: r.height}; };
        const name = document.querySelector('#__printgate_bar b');
        const r = name.getBoundingClientRect();
        return {bar: box('__printgate_bar'), more: box('__printgate_extend'), end: box('__printgate_end'),
                name: {left: r.left, right: r.right, text: name.innerText},
                lineHeight: parseFloat(getComputedStyle(document.getElementById('__printgate_extend')).lineHeight)};
    }""")
    assert bar["name"]["text"] == route.device_label
    assert 0 <= bar["name"]["left"] and bar["name"]["right"] <= width, bar  # the whole name is on screen
    for button in ("more", "end"):
        assert bar[button]["right"] <= width, bar
        assert bar[button]["height"] < 2 * bar["lineHeight"], bar  # one line: "More time" does not wrap
        assert bar[button]["top"] >= bar["bar"]["top"], bar  # inside the bar
    if SHOTS:
        await page.screenshot(path=str(SHOTS / f"banner-{width}.png"))

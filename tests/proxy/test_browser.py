"""Headless Chromium through the proxy against the lab EWS: what a technician sees."""

from __future__ import annotations

import asyncio

import pytest

from lab.ews import EwsLab, EwsServer
from tests.proxy.conftest import launch

pytestmark = pytest.mark.browser

HTTP_PRINTER = "jetdirect_m130nw"
HTTPS_PRINTER = "jetdirect_m880"


@pytest.fixture
def ews(ews_lab: EwsLab) -> EwsServer:
    return ews_lab[HTTP_PRINTER]


def no_device_address(html: str, ews: EwsServer) -> None:
    assert ews.host not in html, "device address leaked to the browser"


async def test_launch_sets_host_only_strict_httponly_cookie_and_lands_on_device_home(page, harness, ews):
    route = harness.open_session(ews)
    origin = await launch(page, harness, route)
    assert page.url == origin + "/"
    await page.wait_for_selector("#model")
    cookies = await page.context.cookies()
    ours = [c for c in cookies if c["name"] == "printgate_dwa"]
    assert len(ours) == 1
    assert ours[0]["domain"] == route.host  # host-only
    assert ours[0]["httpOnly"] and ours[0]["sameSite"] == "Strict" and ours[0]["secure"]
    no_device_address(await page.content(), ews)


async def test_launch_link_works_only_once(page, browser, harness, ews):
    route = harness.open_session(ews)
    url = harness.launch_url(route)
    await page.goto(url)
    await page.wait_for_selector("#model")
    other = await browser.new_context()
    try:
        p2 = await other.new_page()
        resp = await p2.goto(url)
        assert resp.status == 403
        assert "already used" in await p2.content()
    finally:
        await other.close()


async def test_login_form_works_and_redirects_stay_on_session_host(page, harness, ews):
    route = harness.open_session(ews)
    origin = await launch(page, harness, route)
    await page.click("#login-link")
    await page.wait_for_url(origin + "/login")
    await page.fill("#username", "admin")
    await page.fill("#password", "admin-pass")
    await page.click("#login-submit")
    await page.wait_for_selector("#logged-in")
    assert page.url == origin + "/settings"
    await page.fill("#location-input", "Second floor")
    await page.click("#settings-submit")
    await page.wait_for_selector("text=Location: Second floor")
    assert ews.state.location == "Second floor"
    no_device_address(await page.content(), ews)
    # the device cookie was made host-only on the session host
    cookies = {c["name"]: c for c in await page.context.cookies()}
    assert cookies["ewssid"]["domain"] == route.host


async def test_absolute_redirect_stays_on_session_host(page, harness, ews):
    route = harness.open_session(ews)
    origin = await launch(page, harness, route)
    await page.click("#redirect-link")
    await page.wait_for_url(origin + "/status")


async def test_websocket_status_page_updates(page, harness, ews):
    route = harness.open_session(ews)
    origin = await launch(page, harness, route)
    await page.goto(origin + "/status")
    await page.wait_for_function("+document.getElementById('updates').textContent >= 3", timeout=10000)
    pages_text = await page.text_content("#pages")
    assert pages_text and pages_text.isdigit()
    no_device_address(await page.content(), ews)


async def test_styled_page_rewrites_css_srcset_meta_refresh_and_inline_js(page, harness, ews):
    route = harness.open_session(ews)
    origin = await launch(page, harness, route)
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(origin) else outside.append(r.url))
    await page.goto(origin + "/styled")
    await page.wait_for_load_state("networkidle")
    assert await page.text_content("#js-address") == origin
    natural, current = await page.evaluate(
        "[document.getElementById('srcset-img').naturalWidth, document.getElementById('srcset-img').currentSrc]"
    )
    assert natural > 0 and current.startswith(origin + "/logo.png")
    color = await page.evaluate("getComputedStyle(document.querySelector('h1')).color")
    assert color == "rgb(29, 53, 87)"  # from extra.css via @import and protocol-relative link
    assert outside == [] and failed == []
    no_device_address(await page.content(), ews)


async def test_banner_shows_device_customer_and_time_without_breaking_page(page, harness, ews):
    route = harness.open_session(ews)
    await launch(page, harness, route)
    bar = page.locator("#__printgate_bar")
    await bar.wait_for()
    text = await bar.inner_text()
    assert ews.state.device_name in text and "ACME Print Customer" in text and "min" in text
    box = await bar.bounding_box()
    assert box is not None and box["height"] <= 32
    # page scripts and layout still work: the page's own elements are there and visible
    assert await page.is_visible("#model")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.reload()
    await bar.wait_for()
    assert errors == []


async def test_end_session_button_ends_session_for_good(page, harness, ews):
    route = harness.open_session(ews)
    origin = await launch(page, harness, route)
    await page.click("#__printgate_end")
    await page.wait_for_selector("text=Remote session ended")
    assert route.session_id in harness.end_requests
    resp = await page.goto(origin + "/")
    assert resp.status == 410
    assert "ended by the technician" in await page.content()


async def test_blocked_download_shows_policy_page_and_session_keeps_working(page, harness, ews):
    route = harness.open_session(ews)
    origin = await launch(page, harness, route)
    await page.goto(origin + "/addressbook")
    await page.click("#export-csv")
    await page.wait_for_selector("text=Blocked by policy")
    await page.goto(origin + "/")
    await page.wait_for_selector("#model")


async def test_firmware_upload_via_real_form_is_blocked(page, harness, ews, tmp_path):
    route = harness.open_session(ews)
    origin = await launch(page, harness, route)
    fw = tmp_path / "fw.bin"
    fw.write_bytes(bytes(range(256)) * 100)
    before = len(ews.state.received)
    await page.goto(origin + "/firmware")
    await page.set_input_files("#firmware-file", str(fw))
    await page.click("#firmware-submit")
    await page.wait_for_selector("text=Blocked by policy")
    assert len(ews.state.received) == before


async def test_fetch_put_from_page_gets_403_json(page, harness, ews):
    route = harness.open_session(ews)
    origin = await launch(page, harness, route)
    result = await page.evaluate(
        "fetch('/api/settings',{method:'PUT',headers:{'content-type':'application/json'},"
        "body:JSON.stringify({location:'x'})}).then(async r=>[r.status, await r.json()])"
    )
    assert result[0] == 403 and result[1]["error"] == "blocked_by_policy"
    assert origin


async def test_https_printer_with_pinned_self_signed_cert_works(page, harness, ews_lab):
    tls_ews = ews_lab[HTTPS_PRINTER]
    assert tls_ews.https and tls_ews.cert_fingerprint
    route = harness.open_session(tls_ews)
    origin = await launch(page, harness, route)
    await page.wait_for_selector("#model")
    assert await page.text_content("#model") == HTTPS_PRINTER
    await page.goto(origin + "/status")
    await page.wait_for_function("+document.getElementById('updates').textContent >= 2", timeout=10000)
    no_device_address(await page.content(), tls_ews)


async def test_https_printer_with_changed_certificate_is_refused(page, harness, ews_lab):
    original = ews_lab[HTTPS_PRINTER]
    # the device was swapped: same address the agent forwards to, another certificate
    impostor = EwsServer("127.0.20.16", 0, device_name=HTTPS_PRINTER, serial="FAKE", https=True)
    async with impostor:
        route = harness.open_session(
            impostor, pinned=original.cert_fingerprint,
        )
        origin = harness.proxy.session_origin(route.session_id)
        await page.goto(harness.launch_url(route))
        await page.wait_for_url(origin + "/")  # the launch page's own navigation, then ours
        await page.wait_for_load_state()
        resp = await page.goto(origin + "/")
        assert resp is not None
        assert resp.status == 502
        assert impostor.state.seen_paths == []
        await asyncio.sleep(0.1)
        events = await harness.events(route.session_id)
        assert any(e.outcome == "failure" for e in events)

"""The guarantee in Chromium: for every lab printer with a login, the admin pages work through a
session signed in by the proxy, and the password is in no byte the browser receives or stores
(every response's headers and body, cookies, localStorage/sessionStorage, the HAR). Without a
stored credential the technician gets the device's own login."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.catalog import PRINTERS, by_name
from lab.ews.device_login import PASSWORD, SESSION_COOKIE, USERNAME
from printgate.domain.credentials import DeviceLogin, LoginKind
from tests.proxy.conftest import ProxyHarness
from tests.proxy.test_credential_injection import VENDORS, _route

SECRETS = (PASSWORD.encode(), PASSWORD.encode().hex().encode())


async def _received_everything(browser, harness: ProxyHarness, route, har: Path, steps) -> tuple[list[bytes], str]:
    """Run ``steps(page, origin)`` in a fresh recorded context; every byte the browser got and kept."""
    context = await browser.new_context(record_har_path=str(har), record_har_content="embed")
    received: list[bytes] = []

    async def keep(response) -> None:
        received.append(str(response.status).encode() + repr(await response.all_headers()).encode())
        try:
            received.append(await response.body())
        except Exception:  # redirects have no body
            pass

    page = await context.new_page()
    page.on("response", keep)
    try:
        await page.goto(harness.launch_url(route))
        await page.wait_for_url(re.compile(r".*/$"))
        origin = harness.proxy.session_origin(route.session_id)
        await steps(page, origin)
        await page.wait_for_load_state("networkidle")
        received.append(repr(await context.cookies()).encode())
        received.append(repr(await context.storage_state()).encode())
        received.append((await page.evaluate(
            "(()=>{try{return JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage),"
            " document.cookie])}catch(e){return 'no storage: '+e.name}})()"
        )).encode())
        text = await page.content()
    finally:
        await context.close()  # writes the HAR
    received.append(har.read_bytes())
    return received, text


@pytest.mark.parametrize("name", [d.name for d in PRINTERS])
async def test_admin_pages_work_and_the_password_never_reaches_the_browser(browser, harness, ews_lab, tmp_path,
                                                                           name):
    ews = ews_lab[name]
    ews.state.auth.unlock()
    login = DeviceLogin(LoginKind(by_name(name).login.kind), USERNAME, PASSWORD)
    route = _route(harness, ews, login, VENDORS.get(name, ""))
    location = f"Bench {name}"

    async def admin_work(page, origin: str) -> None:
        await page.goto(origin + "/settings")
        await page.wait_for_selector("#logged-in")
        assert await page.input_value("#admin-pw") == ""  # the pre-filled password came blank
        await page.fill("#location-input", location)
        await page.click("#settings-submit")
        await page.wait_for_selector(f"text=Location: {location}")
        await page.goto(origin + "/status")
        await page.goto(origin + "/settings")
        await page.wait_for_selector("#logged-in")
        banner = await page.text_content("#__printgate_bar")
        assert banner and f"signed in to the device as {USERNAME} by printgate" in banner

    received, _text = await _received_everything(browser, harness, route, tmp_path / "session.har", admin_work)
    assert ews.state.location == location
    everything = b"\n".join(received)
    assert len(received) > 10 and b"Logged in as admin" in everything
    for secret in SECRETS:
        assert secret not in everything, f"{secret!r} reached the browser of {name}"
    assert f"{SESSION_COOKIE}=".encode() not in everything  # the device's session cookie stayed in the proxy


@pytest.mark.parametrize("name", ["brother_hl5370dw", "xerox", "konica_c250i"])
async def test_without_a_stored_credential_the_device_asks_for_its_own_login(browser, harness, ews_lab, tmp_path,
                                                                              name):
    ews = ews_lab[name]
    route = _route(harness, ews, None, VENDORS.get(name, ""))
    seen: dict[str, int] = {}

    async def open_settings(page, origin: str) -> None:
        page.on("response", lambda r: seen.setdefault(r.url.split("/", 3)[-1], r.status))
        try:
            await page.goto(origin + "/settings")
        except Exception as exc:  # headless Chromium has no dialog for the device's Basic challenge
            assert "AUTH" in str(exc)
        if by_name(name).login.kind == "form":
            await page.wait_for_selector("#login input[type=password]")

    _received, text = await _received_everything(browser, harness, route, tmp_path / "plain.har", open_settings)
    assert "Logged in as admin" not in text and "signed in to the device" not in text
    if by_name(name).login.kind == "basic":
        assert seen["settings"] == 401  # the device's own challenge reached the browser


async def test_in_chromium_the_location_echo_never_tells_whether_a_guess_is_the_password(browser, harness, ews_lab,
                                                                                          tmp_path):
    """The tester's oracle (issue 19 follow-up): guesses typed into the Konica Location field come
    back exactly as typed, the password among them too, on the answer and on a later page."""
    ews = ews_lab["konica_c250i"]
    ews.state.auth.unlock()
    before = ews.state.location
    route = _route(harness, ews, DeviceLogin(LoginKind.BASIC, USERNAME, PASSWORD), VENDORS.get("konica_c250i", ""))
    guesses = ["password123", "xx admin-pas yy", f"a {PASSWORD} b", f"secret|letmein|{PASSWORD}|1234"]
    shown: list[tuple[str, str, str]] = []

    async def guess_away(page, origin: str) -> None:
        for guess in guesses:
            await page.goto(origin + "/settings")
            await page.fill("#location-input", guess)
            await page.click("#settings-submit")
            await page.wait_for_load_state()
            answered = await page.inner_text("#location")
            await page.goto(origin + "/status")
            await page.goto(origin + "/settings")
            shown.append((guess, answered, await page.inner_text("#location")))

    try:
        await _received_everything(browser, harness, route, tmp_path / "oracle.har", guess_away)
    finally:
        ews.state.location = before
    assert shown == [(g, f"Location: {g}", f"Location: {g}") for g in guesses], shown
    events = await harness.events(route.session_id)
    assert [e.details["rule"] for e in events if e.type == "dwa.credential_typed"] == ["credential.typed_by_technician"]
    assert all(PASSWORD not in str(e.details) for e in events)

"""What every persona journey does on a page: sign in as a demo account, look at the page at
phone and laptop width (screenshots into ``var/screenshots/<persona>/``, no horizontal
scrolling, the header nav on one line at 1366 px) and check it with axe-core (no serious or
critical violations)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pyotp
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

from printgate.cli.demo_system import DemoSystem, DemoUser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
WIDTHS = (1366, 375)
_axe = Axe()
WIDEST = """(() => [...document.querySelectorAll('body *')]
  .filter(e => !e.closest('header nav') && e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
  .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '')
       + ' ' + Math.round(e.getBoundingClientRect().right) + 'px')
  .slice(0, 6))()"""


async def sign_in(page: Page, system: DemoSystem, account: DemoUser) -> None:
    """Password and TOTP (``enter_totp``)."""
    await page.goto(system.portal_url + "/login")
    await page.fill("input[name=email]", account.email)
    await page.fill("input[name=password]", account.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/login/verify**")
    await enter_totp(page, account)


async def enter_totp(page: Page, account: DemoUser) -> None:
    """Type the account's TOTP code on the verify page until it is accepted. Another test of the
    shared system may have used the current code, which is then refused as a replay: the next
    window's code is the one an authenticator running 30 s fast shows, and the portal accepts it
    (one step of clock skew, ``portal.auth.totp.WINDOW``); waiting for the next window instead
    cost up to 30 s a sign-in. Only when that one was used too does it wait for the window."""
    totp = pyotp.TOTP(account.totp_secret)
    for attempt in range(3):
        await page.fill("input[name=code]", totp.at(time.time() + (30 if attempt else 0)))
        await page.get_by_role("button", name="Verify").click()
        await page.wait_for_load_state()
        if "/login" not in page.url:
            return
        if attempt:
            await asyncio.sleep(30 - time.time() % 30 + 0.5)
    raise AssertionError(f"{account.email} could not sign in: {page.url}")


async def look_at(page: Page, persona: str, name: str) -> None:
    """Screenshots at both widths, layout checks, axe-core; the page stays at 1366 px."""
    folder = SCREENSHOTS / persona
    folder.mkdir(parents=True, exist_ok=True)
    # a page just navigated to can be in the DOM before its style sheet has loaded: measured then,
    # its unstyled header was 75 px (the sign-out form on a row of its own), CI under load
    await page.wait_for_load_state("load")
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        # the renderer applies the new size (and its media queries) asynchronously: under a loaded
        # parallel suite a 1366 px page was once measured with the narrow layout's header
        await page.wait_for_function(f"window.innerWidth === {width} && matchMedia('(min-width: {width}px)').matches")
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow > 0:
            wide = await page.evaluate(WIDEST)
            raise AssertionError(f"{persona}/{name}: {overflow}px horizontal scrolling at {width}px: {wide}")
        if width >= 1366:
            rows = await page.evaluate(
                "new Set([...document.querySelectorAll('header nav a')].map(a => a.offsetTop)).size")
            assert rows <= 1, f"{persona}/{name}: the header nav wraps at {width}px"
            height = await page.evaluate("document.querySelector('header').getBoundingClientRect().height")
            assert height <= 56, f"{persona}/{name}: the header takes {height}px (two rows) at {width}px"
        await page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
    await page.set_viewport_size({"width": 1366, "height": 900})
    results = await _axe.run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert not bad, f"{persona}/{name}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in bad)

"""The pages changed for the newcomer's findings, in headless Chromium: no console errors (the portal's
own CSP, style-src 'self', refused the inline styles of Users, Integrations and API tokens: finding 12),
checkbox labels side by side, the error of a refused form beside its field, and a screenshot of each
page (``PRINTGATE_SHOTS=<dir>`` keeps them)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from audit.checkpoint import Signer
from audit.log import AuditLog
from integrations.endpoints import WebhookEndpoints
from integrations.webhook import WebhookTransport
from lab.ports import free_tcp_port
from portal.app import create_app
from printgate.domain import DeviceIdentity, Role
from printgate.settings import PortalSettings
from printgate.store.db import Database
from printgate.testing.broker import PolicyBroker
from printgate.testing.database import migrated, sqlite_url
from printgate.testing.portal import Clock, create_user, served, sign_in_page
from printgate.testing.tenancy import Tenancy
from printgate.vault import CredentialVault, FileKms

pytestmark = pytest.mark.browser
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


@dataclass
class World:
    url: str
    db: Database
    clock: Clock


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with migrated(sqlite_url(tmp_path / "p.db")) as db:
        await (Tenancy().dealer("d1").customer("c1", "d1", "Acme").site("s1", "c1").agent("a1", "s1", online=True)
               .device("dev1", "s1", "a1", "127.0.20.11", DeviceIdentity(serial="SN1", model="HL-5370DW"),
                       name="Front desk Brother").save(db))
        port, clock = free_tcp_port(), Clock()
        base = f"http://127.0.0.1:{port}"
        settings = PortalSettings(host="127.0.0.1", port=port, public_url=base,
                                  secret_key=SecretStr(secrets.token_urlsafe(32)))
        log = AuditLog(db, Signer.generate())
        kms = FileKms(tmp_path / "vault.key")
        app = create_app(settings, db=db, broker=PolicyBroker(db, clock, base, log), audit=log, clock=clock,
                         vault=CredentialVault(db, kms, log))
        transport = WebhookTransport(timeout=5)
        app.state.webhook_endpoints = WebhookEndpoints(db, kms, log, transport)
        async with served(app, port) as url:
            yield World(url, db, clock)
        await transport.aclose()


async def test_changed_pages_have_no_console_errors_and_inline_checkboxes(world: World) -> None:
    from playwright.async_api import Page, async_playwright

    shots = Path(os.environ.get("PRINTGATE_SHOTS", "")) if os.environ.get("PRINTGATE_SHOTS") else None
    admin, admin_secret = await create_user(world.db, Role.DEALER_ADMIN, dealer="d1")
    auditor, auditor_secret = await create_user(world.db, Role.AUDITOR, dealer="d1")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            errors: list[str] = []

            async def new_page(email: str, secret: str | None) -> Page:
                page = await (await browser.new_context(viewport={"width": 1200, "height": 900})).new_page()
                page.on("console", lambda m: errors.append(f"{page.url}: {m.text}")  # CSP refusals, script errors
                        if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
                await sign_in_page(page, world.url, email, secret, world.clock)
                return page

            async def look(page: Page, path: str, name: str) -> None:
                if path:
                    await page.goto(f"{world.url}{path}")
                    await page.wait_for_load_state("networkidle")
                if shots is not None:
                    shots.mkdir(parents=True, exist_ok=True)
                    await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

            page = await new_page(admin.email, admin_secret)
            for path, name in (("/admin/users", "users"), ("/integrations", "integrations"), ("/tokens", "tokens"),
                               ("/credentials", "credentials"), ("/fleet", "fleet"),
                               ("/security-alerts", "security-alerts")):
                await look(page, path, name)
                if path == "/admin/users":  # the invite form's role checkboxes sit on one line
                    boxes = [await b.bounding_box() for b in await page.locator("#invite-form label.check").all()]
                    assert len(boxes) >= 2 and len({round(b["y"]) for b in boxes if b}) == 1, boxes
                if path == "/tokens":
                    boxes = [await b.bounding_box() for b in await page.locator("label.check").all()]
                    assert len(boxes) >= 2 and len({round(b["y"]) for b in boxes if b}) == 1, boxes
            # refused forms: the message beside the field
            await page.goto(f"{world.url}/admin/users")
            # the browser itself refuses what the server does (one definition): switch its check off to reach ours
            await page.evaluate("document.getElementById('invite-form').noValidate = true")
            await page.fill("#inv-email", "notanemail")
            await page.check("#invite-form input[value=technician]")
            await page.click("#invite-form button[type=submit]")
            await page.wait_for_selector("#inv-email-error")
            assert "is not an e-mail address" in await page.inner_text("#inv-email-error")
            await look(page, "", "users-invite-refused")
            await page.goto(f"{world.url}/credentials")
            options = await page.locator("#device option").all_inner_texts()
            assert options == ["Front desk Brother (127.0.20.11, id dev1)"], options
            await page.goto(f"{world.url}/fleet")
            await page.click("text=Change the supply thresholds")
            await page.fill("input[name=warning_percent]", "5")
            await page.fill("input[name=critical_percent]", "15")
            await page.click("#thresholds-form button[type=submit]")
            await page.wait_for_selector("#f-critical_percent-error")
            await look(page, "", "fleet-thresholds-refused")
            await page.goto(f"{world.url}/integrations")
            await page.fill("input[name=url]", "http://127.0.0.1:9/hook")
            await page.check("input[name=kinds] >> nth=0")
            await page.click("form[action='/integrations/endpoints'] button[type=submit]")
            await page.wait_for_selector(".error")
            assert "allow_private_endpoints" in await page.inner_text(".error")
            assert await page.locator("p.error").count() == 1  # beside the form, not also atop the page
            await look(page, "", "integrations-refused")
            page = await new_page(auditor.email, auditor_secret)
            await look(page, "/audit", "audit")
            assert await page.locator("#download-public-key").get_attribute("href") == "/audit/keys/audit-public.pem"
        finally:
            await browser.close()
    assert errors == [], errors

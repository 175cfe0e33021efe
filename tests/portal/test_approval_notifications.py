"""Approver journey: the technician is asked for a reason instead of refused, the customer's
administrators get an e-mail (a real SMTP server, aiosmtpd, on loopback) and a signed webhook,
see names, the reason and a labelled duration; the technician is told of the decision, and
the approvals page shows it without reloading (Chromium)."""

from __future__ import annotations

import asyncio
import email
import json
import re
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request

from integrations.webhook import EVENT_ID_HEADER, verify_signature
from lab.ports import free_tcp_port
from portal.app import create_app
from portal.notifications import SIGNATURE_HEADER
from printgate.domain import Role, User
from printgate.settings import NotifySettings, PortalSettings
from printgate.store.db import Database
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.broker import PolicyBroker
from printgate.testing.database import migrated, sqlite_url
from printgate.testing.portal import Clock, create_user, csrf_of, served, sign_in
from tests.portal.conftest import seed

SECRET = "webhook-secret-for-the-test"


class Inbox:
    """aiosmtpd handler keeping every message it was handed."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"


@dataclass
class World:
    url: str
    db: Database
    clock: Clock
    inbox: Inbox
    hooks: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


async def until(predicate: Any, what: str, timeout: float = 10) -> None:
    for _ in range(int(timeout * 20)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_tcp_port())
    smtp.start()
    hooks: list[tuple[dict[str, str], bytes]] = []
    receiver = FastAPI()

    @receiver.post("/hook")
    async def hook(request: Request) -> dict[str, str]:
        hooks.append((dict(request.headers), await request.body()))
        return {"ok": "yes"}

    hook_port = free_tcp_port()
    try:
        async with migrated(sqlite_url(tmp_path_factory.mktemp("notify") / "p.db")) as db, \
                served(receiver, hook_port) as hook_url:
            await seed(db)
            port = free_tcp_port()
            base = f"http://127.0.0.1:{port}"
            notify = NotifySettings(smtp_host="127.0.0.1", smtp_port=smtp.port, mail_from="printgate@dealer.test",
                                    webhook_url=f"{hook_url}/hook", webhook_secret=SECRET)  # type: ignore[arg-type]
            settings = PortalSettings(host="127.0.0.1", port=port, public_url=base, notify=notify,
                                      secret_key=secrets.token_urlsafe(32))  # type: ignore[arg-type]
            clock, audit = Clock(), RecordingAuditSink()
            app = create_app(settings, db=db, broker=PolicyBroker(db, clock, base, audit), audit=audit, clock=clock)
            async with served(app, port) as url:
                yield World(url, db, clock, inbox, hooks)
    finally:
        smtp.stop()


async def client_of(world: World, user: User, secret: str | None) -> httpx.AsyncClient:
    c = httpx.AsyncClient(base_url=world.url, timeout=10, headers={"accept": "text/html"})
    await sign_in(c, world, user, secret)
    return c


def hook_events(world: World) -> list[dict[str, Any]]:
    out = []
    for headers, body in world.hooks:
        verify_signature(SECRET.encode(), headers[SIGNATURE_HEADER.lower()], body)  # signed, fresh
        event = json.loads(body)
        assert event["id"] == headers[EVENT_ID_HEADER.lower()]  # the receiver's de-duplication key
        out.append(event)
    return out


async def request_access(tech: httpx.AsyncClient, reason: str) -> str:
    devices = await tech.get("/devices")
    page = await tech.post("/devices/dev-c-appr/open", data={"csrf_token": csrf_of(devices.text)})
    assert "Approval required — request access" in page.text and "Access refused" not in page.text
    assert re.search(r'<label for="reason">Why do you need access\?</label>\s*<textarea id="reason"', page.text)
    empty = await tech.post("/devices/dev-c-appr/approval-request", data={"csrf_token": csrf_of(page.text)})
    assert empty.status_code == 422 and "say why you need access" in empty.text
    r = await tech.post("/devices/dev-c-appr/approval-request", data={"csrf_token": csrf_of(page.text),
                                                                      "reason": reason})
    assert r.status_code == 303
    found = re.search(r'data-approval-id="([0-9a-f]+)" data-status="pending"', (await tech.get("/approvals")).text)
    assert found
    return found.group(1)


async def test_request_notifies_approvers_and_decision_notifies_technician(world: World) -> None:
    tech_user, secret = await create_user(world.db, Role.TECHNICIAN)
    admin_user, _ = await create_user(world.db, Role.CUSTOMER_ADMIN, dealer=None, customer="c-appr", totp=False)
    other_admin, _ = await create_user(world.db, Role.CUSTOMER_ADMIN, dealer=None, customer="c-open", totp=False)
    tech = await client_of(world, tech_user, secret)
    admin = await client_of(world, admin_user, None)
    try:
        approval_id = await request_access(tech, "paper jam 13.B2 at the front desk")

        # the customer's administrators get an e-mail and the webhook an event; others do not
        await until(lambda: any(admin_user.email in to for to, _ in world.inbox.messages), "approver e-mail")
        to, msg = next((to, m) for to, m in world.inbox.messages if admin_user.email in to)
        assert other_admin.email not in to
        body = msg.get_payload()
        assert isinstance(body, str)
        for text in (tech_user.display_name, "Finance MFP", "Customer c-appr", "paper jam 13.B2",
                     f"{world.url}/approvals"):
            assert text in body or text in str(msg["Subject"]), (text, body)
        await until(lambda: any(e["event"] == "approval.requested" for e in hook_events(world)), "webhook")

        # the approver sees names, the reason and a labelled duration
        page = (await admin.get("/approvals")).text
        row = page[page.index(f'data-approval-id="{approval_id}"'):]
        row = row[:row.index("</tr>")]
        for text in (tech_user.display_name, tech_user.email, "Finance MFP", "Customer c-appr", "paper jam 13.B2"):
            assert text in row, (text, row)
        assert f'<label for="minutes-{approval_id}">Allow access for</label>' in row
        assert ">dev-c-appr<" not in row and f">{tech_user.id}<" not in row  # ids only on hover
        state = (await tech.get(f"/api/approvals/{approval_id}")).json()
        assert state["status"] == "pending"

        r = await admin.post(f"/approvals/{approval_id}/approve", data={"csrf_token": csrf_of(page), "minutes": "30"})
        assert r.status_code == 303
        await until(lambda: any(tech_user.email in to for to, _ in world.inbox.messages), "technician e-mail")
        _, told = next((to, m) for to, m in world.inbox.messages if tech_user.email in to)
        assert "approved until" in str(told["Subject"]) and admin_user.email in str(told.get_payload())
        await until(lambda: any(e["event"] == "approval.approved" and e["approval_id"] == approval_id
                                for e in hook_events(world)), "decision webhook")
        state = (await tech.get(f"/api/approvals/{approval_id}")).json()
        assert state["status"] == "approved" and state["decided_by"] == admin_user.email
        decided = (await admin.get("/approvals")).text  # "approved … by" a name, the e-mail on hover (issue 15)
        assert f'by <span class="decided-by" title="{admin_user.email}">{admin_user.display_name}</span>' in decided

        # nobody else reads the request's state
        stranger_user, stranger_secret = await create_user(world.db, Role.TECHNICIAN)
        stranger = await client_of(world, stranger_user, stranger_secret)
        assert (await stranger.get(f"/api/approvals/{approval_id}")).status_code == 404
        await stranger.aclose()
    finally:
        await tech.aclose()
        await admin.aclose()


@pytest.mark.browser
async def test_the_technicians_page_shows_the_decision_without_reloading(world: World) -> None:
    if shutil.which("chromium") is None:
        pytest.skip("chromium not installed")
    from playwright.async_api import async_playwright, expect

    from tests.portal.test_browser_dwa import ARGS
    from tests.portal.test_browser_dwa import sign_in as browser_sign_in

    tech_user, secret = await create_user(world.db, Role.TECHNICIAN)
    admin_user, _ = await create_user(world.db, Role.CUSTOMER_ADMIN, dealer=None, customer="c-appr", totp=False)
    admin = await client_of(world, admin_user, None)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            page = await browser.new_page()
            await browser_sign_in(page, world, tech_user.email, secret)  # type: ignore[arg-type]
            token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
            await page.request.post(f"{world.url}/devices/dev-c-appr/approval-request",
                                    form={"csrf_token": token or "", "reason": "drum unit error"}, max_redirects=0)
            await page.goto(f"{world.url}/approvals")
            row = page.locator("tr[data-status]", has_text="drum unit error")
            await expect(row.locator("td.state")).to_contain_text("pending")
            approval_id = await row.get_attribute("data-approval-id")
            admin_page = (await admin.get("/approvals")).text
            r = await admin.post(f"/approvals/{approval_id}/approve",
                                 data={"csrf_token": csrf_of(admin_page), "minutes": "60"})
            assert r.status_code == 303
            # no reload: the page polls and shows the decision and the way in
            await expect(row.locator("td.state")).to_contain_text("approved until", timeout=15_000)
            await expect(row.get_by_role("button", name="Open web page")).to_be_visible()
        finally:
            await browser.close()
            await admin.aclose()

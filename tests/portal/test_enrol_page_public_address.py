"""Issue 18 finding 3: behind a load balancer the enrolment-token page shows the balancer's
enrolment address and the agent's ``cloud_grpc`` (``[channel] public_enrol_address`` /
``public_address``, passed by ``serve`` as the portal's agent_enrol_url / agent_channel_url), never
the serving node's own address. Screenshot: PRINTGATE_SCREENSHOT_DIR=/tmp/x."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from lab.ports import free_tcp_port
from portal.app import create_app
from printgate.domain import Role
from printgate.settings import PortalSettings
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.broker import PolicyBroker
from printgate.testing.database import fresh_database
from printgate.testing.portal import Clock, create_user, csrf_of, served, sign_in
from printgate.testing.tenancy import Tenancy
from tests.portal.conftest import Portal

LB_ENROL, LB_CHANNEL = "gw.example.com:8444", "gw.example.com:443"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_the_token_page_names_the_balancers_addresses(backend: str, tmp_path: Path) -> None:
    async with fresh_database(backend, tmp_path) as db:
        await Tenancy().dealer("d1").customer("c1", "d1", "Customer One").site("s1", "c1", "Head office").save(db)
        port, clock, audit = free_tcp_port(), Clock(), RecordingAuditSink()
        settings = PortalSettings(port=port, public_url=f"http://127.0.0.1:{port}",
                                  secret_key=SecretStr(secrets.token_urlsafe(32)),
                                  agent_enrol_url=LB_ENROL, agent_channel_url=LB_CHANNEL)
        app = create_app(settings, db=db, broker=PolicyBroker(db, clock, settings.public_url), audit=audit,
                         clock=clock)
        async with served(app, port) as url, httpx.AsyncClient(base_url=url, timeout=15) as c:
            user, secret = await create_user(db, Role.DEALER_ADMIN, dealer="d1")
            await sign_in(c, Portal(url, db, audit, clock, settings), user, secret)
            listing = await c.get("/agents")
            page = await c.post("/agents/sites/s1/enrolment-token", data={"csrf_token": csrf_of(listing.text)})
            assert page.status_code == 200, page.text
            assert re.search(rf"printgate agent enroll --url {re.escape(LB_ENROL)} --token pgenrol_", page.text)
            assert f'cloud_grpc = &#34;{LB_CHANNEL}&#34;' in page.text or f'cloud_grpc = "{LB_CHANNEL}"' in page.text
            shots = os.environ.get("PRINTGATE_SCREENSHOT_DIR")
            if shots:
                from playwright.async_api import async_playwright

                async with async_playwright() as pw:
                    browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                    view = await browser.new_page()
                    await view.goto(f"{url}/login")  # same origin: the page's stylesheet loads
                    await view.set_content(page.text)
                    await view.screenshot(path=f"{shots}/enrol-token-{backend}.png", full_page=True)
                    await browser.close()

"""Caps on what one tenant can make the cloud call (issue 20): security-alert subscriptions per
tenant (portal and CLI refuse with the setting's name) and webhook endpoints per dealer."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from audit.log import AuditLog
from integrations.endpoints import WebhookEndpoints
from integrations.errors import EndpointInvalid
from integrations.webhook import WebhookTransport
from lab.ports import free_tcp_port
from portal.app import create_app
from printgate.domain import Role
from printgate.settings import PortalSettings
from printgate.store import security_subscriptions as subs
from printgate.store.db import Database
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.broker import PolicyBroker
from printgate.testing.portal import Clock, create_user, csrf_of, served, sign_in
from printgate.testing.tenancy import Tenancy
from printgate.vault.kms import FileKms
from tests.alerting.test_admin_cli import KEY, PRINTGATE


class _Has:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock


@pytest.fixture
async def portal(db: Database) -> AsyncIterator[tuple[str, Clock]]:
    await Tenancy().chain(dealer="d1", customer="cA", site="sA").customer("cB", "d1").save(db)
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    settings = PortalSettings(host="127.0.0.1", port=port, public_url=base, secret_key=secrets.token_urlsafe(32))
    clock, audit = Clock(), AuditLog(db, None)
    app = create_app(settings, db=db, broker=PolicyBroker(db, clock, base, audit), audit=audit, clock=clock)
    app.state.max_security_subscriptions = 2
    async with served(app, port) as url:
        yield url, clock


async def test_the_portal_refuses_a_subscription_over_the_cap(db: Database, portal: tuple[str, Clock]) -> None:
    url, clock = portal
    admin_a, secret_a = await create_user(db, Role.CUSTOMER_ADMIN, dealer=None, customer="cA")
    admin_b, secret_b = await create_user(db, Role.CUSTOMER_ADMIN, dealer=None, customer="cB")
    async with httpx.AsyncClient(base_url=url, timeout=10, headers={"accept": "text/html"}) as a:
        await sign_in(a, _Has(clock), admin_a, secret_a)
        page = await a.get("/security-alerts")
        for i in range(2):
            r = await a.post("/security-alerts/subscriptions", data={
                "csrf_token": csrf_of(page.text), "channel": "email", "target": f"soc{i}@a.example"})
            assert r.status_code == 200, r.text
        over = await a.post("/security-alerts/subscriptions", data={
            "csrf_token": csrf_of(page.text), "channel": "email", "target": "soc9@a.example"})
        assert over.status_code == 422
        assert "maximum of 2 security-alert subscriptions" in over.text
        assert "max_subscriptions_per_tenant" in over.text
    async with httpx.AsyncClient(base_url=url, timeout=10, headers={"accept": "text/html"}) as b:
        await sign_in(b, _Has(clock), admin_b, secret_b)  # another tenant: its own count
        page = await b.get("/security-alerts")
        r = await b.post("/security-alerts/subscriptions", data={
            "csrf_token": csrf_of(page.text), "channel": "email", "target": "soc@b.example"})
        assert r.status_code == 200
    async with db.session() as s:
        assert await subs.count_subscriptions(s, dealer_id="d1", customer_id="cA") == 2
        assert await subs.count_subscriptions(s, dealer_id="d1", customer_id="cB") == 1


async def test_the_cli_refuses_a_subscription_over_the_cap(db: Database, database_url: str) -> None:
    await Tenancy().chain(dealer="d1", customer="cA", site="sA").save(db)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PRINTGATE_")}
    env = {**clean, "COLUMNS": "200", "PRINTGATE_DATABASE_URL": database_url,
           "PRINTGATE_GATEWAY__VAULT_MASTER_KEY_FILE": str(KEY),
           "PRINTGATE_SECURITY_ALERTS__MAX_SUBSCRIPTIONS_PER_TENANT": "1"}

    def subscribe(target: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PRINTGATE, "admin", "security-alerts", "subscribe", "--dealer", "d1",
                               "--channel", "email", "--target", target], capture_output=True, text=True,
                              timeout=60, env=env)

    assert subscribe("one@d1.example").returncode == 0
    refused = subscribe("two@d1.example")
    assert refused.returncode != 0
    assert "maximum of 1 security-alert subscriptions" in refused.stderr + refused.stdout


async def test_webhook_endpoints_per_dealer_are_capped_by_the_setting(db: Database, tmp_path: Path) -> None:
    await Tenancy().chain(dealer="d1", customer="c1", site="s1").save(db)
    transport = WebhookTransport(timeout=2, allow_private=True)
    endpoints = WebhookEndpoints(db, FileKms(tmp_path / "k"), RecordingAuditSink(), transport,
                                 allow_private=True, max_endpoints=3)
    try:
        for i in range(3):
            await endpoints.add(dealer_id="d1", url=f"https://hooks.example.com/{i}", description="", kinds=[], by="t")
        with pytest.raises(EndpointInvalid, match="at most 3 webhook endpoints per dealer"):
            await endpoints.add(dealer_id="d1", url="https://hooks.example.com/x", description="", kinds=[], by="t")
    finally:
        await transport.aclose()

"""The attack replay through the real portal: 500 failed sign-ins at /login land in the real
audit log; the follower tells customer A's contact (subscribed on the Security alerts page,
signed webhook) in at most 3 messages naming the count and the source; customer B's contact
hears nothing; auditors see the alerts of their own customer only."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from alerting.follower import SecurityAlertFollower
from audit.log import AuditLog
from lab.ports import free_tcp_port
from portal.app import create_app
from printgate.domain import Role
from printgate.settings import PortalSettings
from printgate.store import security_subscriptions as subs
from printgate.store.db import Database
from printgate.testing.broker import PolicyBroker
from printgate.testing.clock import FrozenClock
from printgate.testing.portal import Clock, create_user, csrf_of, served, sign_in
from printgate.testing.tenancy import Tenancy
from tests.alerting.test_follower import KMS, Receivers, follower, receivers  # noqa: F401 (fixture)

SECRET_RE = re.compile(r'<code id="new-secret">([^<]+)</code>')


@pytest.fixture
async def portal(db: Database) -> AsyncIterator[tuple[str, Clock]]:
    await (Tenancy().chain(dealer="d1", customer="cA", site="sA").customer("cB", "d1").site("sB", "cB")
           .save(db))
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    settings = PortalSettings(host="127.0.0.1", port=port, public_url=base, secret_key=secrets.token_urlsafe(32))
    clock, audit = Clock(), AuditLog(db, None)
    app = create_app(settings, db=db, broker=PolicyBroker(db, clock, base, audit), audit=audit, clock=clock)
    app.state.allow_private_webhooks = True  # the receiver is on loopback
    app.state.security_alert_kms = KMS  # webhook secrets are sealed under the vault's master key
    async with served(app, port) as url:
        yield url, clock


async def page_client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, follow_redirects=False, timeout=10, headers={"accept": "text/html"})


async def test_500_failed_sign_ins_through_the_portal_give_a_few_messages_to_the_right_tenant(
        db: Database, portal: tuple[str, Clock], receivers: Receivers) -> None:  # noqa: F811
    url, clock = portal
    admin_a, secret_a = await create_user(db, Role.CUSTOMER_ADMIN, dealer=None, customer="cA")
    admin_b, secret_b = await create_user(db, Role.CUSTOMER_ADMIN, dealer=None, customer="cB")
    auditor_a, secret_aa = await create_user(db, Role.AUDITOR, dealer=None, customer="cA")
    auditor_b, secret_ab = await create_user(db, Role.AUDITOR, dealer=None, customer="cB")
    victim, _ = await create_user(db, Role.TECHNICIAN, dealer=None, customer="cA")

    async with await page_client(url) as a:
        await sign_in(a, _Has(clock), admin_a, secret_a)
        page = await a.get("/security-alerts")
        assert page.status_code == 200 and "Nobody is subscribed yet" in page.text
        bad = await a.post("/security-alerts/subscriptions", data={
            "csrf_token": csrf_of(page.text), "channel": "email", "target": "not an address"})
        assert bad.status_code == 422 and "is not an e-mail address" in bad.text
        added = await a.post("/security-alerts/subscriptions", data={
            "csrf_token": csrf_of(page.text), "channel": "webhook", "target": receivers.hook_url,
            "contact": "Acme SOC", "min_severity": "high", "categories": ["sign_in"]})
        assert added.status_code == 200, added.text
        webhook_secret = SECRET_RE.search(added.text).group(1)
    async with db.session() as s:
        [stored] = await subs.list_subscriptions(s, customer_id="cA")
    assert stored.secret and webhook_secret not in stored.secret  # kept sealed, never in the clear
    async with await page_client(url) as b:
        await sign_in(b, _Has(clock), admin_b, secret_b)
        page = await b.get("/security-alerts")
        r = await b.post("/security-alerts/subscriptions", data={
            "csrf_token": csrf_of(page.text), "channel": "email", "target": "secops@b.example"})
        assert r.status_code == 200
        # B's admin cannot remove A's subscription
        async with db.session() as s:
            [sub_a] = await subs.list_subscriptions(s, customer_id="cA")
        r = await b.post(f"/security-alerts/subscriptions/{sub_a.id}/delete", data={"csrf_token": csrf_of(page.text)})
        assert r.status_code == 404

    receivers.secret = webhook_secret  # the receiver checks signatures with the secret the page showed once
    f = follower(db, receivers, FrozenClock())
    await f.evaluate_once()
    async with await page_client(url) as attacker:
        token = csrf_of((await attacker.get("/login")).text)
        for _ in range(500):
            r = await attacker.post("/login", data={"email": victim.email, "password": "wrong guess",
                                                    "csrf_token": token})
            assert r.status_code in (401, 429)
    await _drain(f)
    f.clock.now += timedelta(minutes=11)  # type: ignore[attr-defined]
    await _drain(f)

    assert receivers.bad_signatures == 0
    assert 1 <= len(receivers.hooks) <= 3
    assert sum(h["count"] for h in receivers.hooks) == 500
    assert all(h["source_ip"] == "127.0.0.1" and h["customer_id"] == "cA" for h in receivers.hooks)
    first, *rest = receivers.hooks
    assert first["kind"] == "alert" and "127.0.0.1" in first["title"] and victim.email in first["text"]
    assert rest and "490 more for 127.0.0.1" in rest[-1]["text"]
    assert receivers.mails == []  # customer B's contact hears nothing of customer A

    async with await page_client(url) as aa:
        await sign_in(aa, _Has(clock), auditor_a, secret_aa)
        text = (await aa.get("/security-alerts")).text
        assert "Burst of failed sign-ins from one address: 127.0.0.1" in text and "Subscribe" not in text
    async with await page_client(url) as ab:
        await sign_in(ab, _Has(clock), auditor_b, secret_ab)
        text = (await ab.get("/security-alerts")).text
        assert "No security alerts." in text and "127.0.0.1" not in text


class _Has:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock


async def _drain(f: SecurityAlertFollower) -> None:
    await f.evaluate_once()
    while not f.caught_up:
        await f.evaluate_once()
    await f.deliver_once()

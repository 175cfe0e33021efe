"""A webhook or syslog target on a loopback/private address is refused naming the setting that allows
it in a lab (newcomer finding 16): [security_alerts] allow_private_webhooks on the Security page,
[integrations] allow_private_endpoints on Integrations; other refusals are left as they were."""

from __future__ import annotations

import html
import re
import secrets
from pathlib import Path

import httpx
from pydantic import SecretStr

from integrations.endpoints import WebhookEndpoints
from integrations.webhook import WebhookTransport
from lab.ports import free_tcp_port
from portal.app import create_app
from portal.forms import with_private_switch
from printgate.domain import Role
from printgate.settings import PortalSettings
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.broker import PolicyBroker
from printgate.testing.database import migrated, sqlite_url
from printgate.testing.portal import Clock, create_user, csrf_of, served, sign_in
from printgate.testing.tenancy import Tenancy
from printgate.vault import FileKms


def _error(page: str) -> str:
    m = re.search(r'class="error"[^>]*>(.*?)</p>', page, re.S)
    assert m, page[:2000]
    return html.unescape(m.group(1))


async def test_loopback_targets_are_refused_naming_the_switch(tmp_path: Path) -> None:
    async with migrated(sqlite_url(tmp_path / "p.db")) as db:
        await Tenancy().chain(dealer="d1", customer="c1", site="s1").save(db)
        port, clock, audit = free_tcp_port(), Clock(), RecordingAuditSink()
        base = f"http://127.0.0.1:{port}"
        settings = PortalSettings(host="127.0.0.1", port=port, public_url=base,
                                  secret_key=SecretStr(secrets.token_urlsafe(32)))
        app = create_app(settings, db=db, broker=PolicyBroker(db, clock, base, audit), audit=audit, clock=clock)
        transport = WebhookTransport(timeout=5)
        app.state.webhook_endpoints = WebhookEndpoints(db, FileKms(tmp_path / "vault.key"), audit, transport)
        async with served(app, port) as url, httpx.AsyncClient(base_url=url, timeout=10,
                                                               headers={"accept": "text/html"}) as c:
            admin, secret = await create_user(db, Role.DEALER_ADMIN, dealer="d1")
            await sign_in(c, _Has(clock), admin, secret)
            token = csrf_of((await c.get("/security-alerts")).text)
            r = await c.post("/security-alerts/subscriptions", data={
                "csrf_token": token, "channel": "webhook", "target": "http://127.0.0.1:9/hook"})
            assert r.status_code == 422
            error = _error(r.text)
            assert "non-public address" in error and "[security_alerts] allow_private_webhooks = true" in error
            assert "PRINTGATE_SECURITY_ALERTS__ALLOW_PRIVATE_WEBHOOKS=true" in error
            r = await c.post("/security-alerts/subscriptions", data={
                "csrf_token": token, "channel": "syslog", "target": "tcp://localhost:514"})
            assert r.status_code == 422 and "allow_private_webhooks" in _error(r.text)
            token = csrf_of((await c.get("/integrations")).text)
            r = await c.post("/integrations/endpoints", data={
                "csrf_token": token, "url": "http://127.0.0.1:9/hook", "kinds": ["alert.opened"]})
            assert r.status_code == 422
            error = _error(r.text)
            assert "non-public address" in error and "[integrations] allow_private_endpoints = true" in error
            r = await c.post("/integrations/endpoints", data={
                "csrf_token": token, "url": "ftp://example.com/hook", "kinds": ["alert.opened"]})
            assert r.status_code == 422 and "allow_private" not in _error(r.text)  # not about the address
        await transport.aclose()


def test_only_address_refusals_name_the_switch() -> None:
    assert with_private_switch("webhook host 10.0.0.1 is a non-public address; point it at the receiver's public "
                               "address", "integrations.allow_private_endpoints").endswith(
        "[integrations] allow_private_endpoints = true in the server's configuration, or "
        "PRINTGATE_INTEGRATIONS__ALLOW_PRIVATE_ENDPOINTS=true)")
    assert "allow" not in with_private_switch("webhook address has no host", "integrations.allow_private_endpoints")


class _Has:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

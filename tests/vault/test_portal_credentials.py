"""Customer admins and dealer admins set, rotate and erase stored device credentials in the portal
(page and API); no answer ever holds the secret; other users are refused; every change audited."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from lab.ports import free_tcp_port
from portal.app import create_app
from printgate.domain import Role, User
from printgate.domain.credentials import CredentialScope, LoginKind
from printgate.settings import PortalSettings
from printgate.store.db import Database
from printgate.testing.audit import ReadableAuditLog
from printgate.testing.broker import PolicyBroker
from printgate.testing.portal import Clock, create_user, csrf_of, served, sign_in
from printgate.testing.tenancy import Tenancy
from printgate.vault import CredentialVault, FileKms

SECRET = "Cust0mer-Adm1n-Secret"


@dataclass
class Served:
    url: str
    db: Database
    audit: ReadableAuditLog
    vault: CredentialVault
    clock: Clock


@pytest.fixture
async def portal(tmp_path) -> AsyncIterator[Served]:
    from printgate.testing.database import migrated, sqlite_url

    async with migrated(sqlite_url(tmp_path / "p.db")) as db:
        await (Tenancy().dealer("d1").dealer("d2").customer("c1", "d1", "Acme").customer("c2", "d1", "Bolt")
               .customer("c3", "d2", "Other").site("s1", "c1").agent("a1", "s1")
               .device("dev1", "s1", "a1", "127.0.20.19").save(db))
        audit = ReadableAuditLog(db, None)
        vault = CredentialVault(db, FileKms(tmp_path / "vault.key"), audit)
        port = free_tcp_port("127.0.0.1")
        base = f"http://127.0.0.1:{port}"
        clock = Clock()
        settings = PortalSettings(host="127.0.0.1", port=port, public_url=base, secret_key=secrets.token_urlsafe(32))
        app = create_app(settings, db=db, broker=PolicyBroker(db, clock, base, audit), audit=audit, clock=clock,
                         vault=vault)
        async with served(app, port) as url:
            yield Served(url, db, audit, vault, clock)


async def _signed_in(portal: Served, *roles: Role, dealer: str | None = "d1",
                     customer: str | None = None) -> tuple[httpx.AsyncClient, User]:
    user, secret = await create_user(portal.db, *roles, dealer=dealer, customer=customer)
    client = httpx.AsyncClient(base_url=portal.url, follow_redirects=False, timeout=10,
                               headers={"accept": "text/html"})
    await sign_in(client, portal, user, secret)
    return client, user


async def test_customer_admin_sets_and_rotates_on_the_page_and_never_sees_the_secret_again(portal):
    client, _ = await _signed_in(portal, Role.CUSTOMER_ADMIN, dealer=None, customer="c1")
    async with contextlib.aclosing(client):
        page = await client.get("/credentials")
        assert page.status_code == 200 and "No stored credentials" in page.text
        for password in (SECRET, SECRET + "-2"):
            r = await client.post("/credentials", data={
                "csrf_token": csrf_of(page.text), "customer_id": "c1", "scope": "model", "target": "MP C3002",
                "kind": "form", "account": "admin", "password": password, "profile": "ricoh"})
            assert r.status_code == 303
        page = await client.get("/credentials")
        assert "model mp c3002" in page.text and "v2" in page.text and "admin" in page.text
        assert SECRET not in page.text
        api = await client.get("/api/device-credentials", params={"customer_id": "c1"})
        assert api.status_code == 200 and SECRET not in api.text
        assert [(c["scope"], c["target"], c["version"]) for c in api.json()] == [("model", "mp c3002", 2)]
        assert "password" not in api.json()[0]
    login = await portal.vault.login_for("c1", "dev-x", "mp c3002")
    assert login is not None and login.password == SECRET + "-2"
    events = await portal.audit.events()
    changes = [e for e in events if e.type.startswith("vault.")]
    assert [e.type for e in changes] == ["vault.credential_set", "vault.credential_rotated"]
    assert changes[0].customer_id == "c1" and changes[0].details["account"] == "admin"
    assert all(SECRET not in str(e) for e in events)


async def test_dealer_admin_uses_the_api_to_set_and_erase_for_a_customer_of_the_dealer(portal):
    client, _ = await _signed_in(portal, Role.DEALER_ADMIN)
    async with contextlib.aclosing(client):
        body = {"customer_id": "c2", "scope": "customer", "kind": "basic", "account": "root", "password": SECRET}
        r = await client.put("/api/device-credentials", json=body)
        assert r.status_code == 204 and r.content == b""
        assert (await portal.vault.login_for("c2", "any", None)).account == "root"
        bad = await client.put("/api/device-credentials", json={**body, "account": "ro:ot"})
        assert bad.status_code == 422 and SECRET not in bad.text
        other = await client.put("/api/device-credentials", json={**body, "customer_id": "c3"})
        assert other.status_code == 403
        erased = await client.post("/api/device-credentials/erase",
                                   json={"customer_id": "c2", "scope": "customer"})
        assert erased.status_code == 204
        assert await portal.vault.login_for("c2", "any", None) is None
        forbid = await client.put("/api/device-credentials/use", json={"customer_id": "c2", "forbidden": True})
        assert forbid.status_code == 403  # only the customer itself forbids
    types = [e.type for e in await portal.audit.events()]
    assert types.count("vault.credential_set") == 1 and "vault.credential_erased" in types


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.VIEWER, Role.AUDITOR])
async def test_other_roles_are_refused(portal, role):
    client, _ = await _signed_in(portal, role)
    async with contextlib.aclosing(client):
        assert (await client.get("/credentials")).status_code == 403
        r = await client.put("/api/device-credentials", json={
            "customer_id": "c1", "scope": "customer", "kind": "basic", "account": "a", "password": SECRET})
        assert r.status_code == 403
    assert await portal.vault.listing("c1") == []


async def test_the_customer_admin_forbids_the_use_of_stored_credentials(portal):
    client, _ = await _signed_in(portal, Role.CUSTOMER_ADMIN, dealer=None, customer="c1")
    async with contextlib.aclosing(client):
        page = await client.get("/credentials")
        r = await client.post("/credentials/use", data={"csrf_token": csrf_of(page.text), "customer_id": "c1",
                                                        "forbidden": "true"})
        assert r.status_code == 303
        assert 'id="forbidden" name="forbidden" value="true" checked' in (await client.get("/credentials")).text
    assert await portal.vault.forbidden("c1")


async def test_break_glass_reveal_needs_the_customers_approval_is_time_limited_once_and_audited(portal):
    await portal.vault.set(customer_id="c1", dealer_id="d1", scope=CredentialScope.DEVICE, target="dev1",
                           kind=LoginKind.FORM, account="admin", password=SECRET, actor="x")
    tech, _ = await _signed_in(portal, Role.TECHNICIAN)
    approver, _ = await _signed_in(portal, Role.CUSTOMER_ADMIN, dealer=None, customer="c1")
    async with contextlib.aclosing(tech), contextlib.aclosing(approver):
        asked = await tech.post("/api/device-credentials/reveal-requests",
                                json={"device_id": "dev1", "reason": "device factory reset, ticket 42"})
        assert asked.status_code == 201 and SECRET not in asked.text
        request_id, approval_id = asked.json()["request_id"], asked.json()["approval_id"]
        early = await tech.post(f"/api/device-credentials/reveal-requests/{request_id}/reveal")
        assert early.status_code == 403 and SECRET not in early.text

        page = await approver.get("/approvals")
        assert "Reveal the stored device password" in page.text
        decided = await approver.post(f"/approvals/{approval_id}/approve",
                                      data={"csrf_token": csrf_of(page.text), "minutes": "5"})
        assert decided.status_code == 303
        stranger, _ = await _signed_in(portal, Role.TECHNICIAN)
        async with contextlib.aclosing(stranger):
            other = await stranger.post(f"/api/device-credentials/reveal-requests/{request_id}/reveal")
            assert other.status_code == 404
        shown = await tech.post(f"/api/device-credentials/reveal-requests/{request_id}/reveal")
        assert shown.status_code == 200 and shown.json()["password"] == SECRET
        assert shown.headers["cache-control"] == "no-store"
        again = await tech.post(f"/api/device-credentials/reveal-requests/{request_id}/reveal")
        assert again.status_code == 409

        late = (await tech.post("/api/device-credentials/reveal-requests",
                                json={"device_id": "dev1", "reason": "again, ticket 43"})).json()
        page = await approver.get("/approvals")
        await approver.post(f"/approvals/{late['approval_id']}/approve",
                            data={"csrf_token": csrf_of(page.text), "minutes": "5"})
        portal.clock.advance(minutes=6)
        expired = await tech.post(f"/api/device-credentials/reveal-requests/{late['request_id']}/reveal")
        assert expired.status_code == 403 and "expired" in expired.text
    events = await portal.audit.events()
    revealed = [e for e in events if e.type == "vault.credential_revealed"]
    assert len(revealed) == 1 and revealed[0].details["approval_id"] == approval_id
    assert [e.type for e in events].count("vault.reveal_requested") == 2
    assert all(SECRET not in str(e) for e in events)

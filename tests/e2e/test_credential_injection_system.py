"""The whole system (lab LAN, cloud, agent, tunnel): a stored credential signs the technician in
to the printer's admin page; without the right "use stored device credentials", or when the
customer forbids it, the technician gets the device's own login page (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from lab.catalog import by_name
from lab.ews.device_login import PASSWORD, USERNAME
from policy.rules import DEFAULT_PERMISSIONS
from printgate.cli.demo_system import DEMO_CUSTOMER, DEMO_DEALER, DemoSystem
from printgate.domain.credentials import CredentialScope, LoginKind
from printgate.store import rule_sets
from tests.e2e.conftest import session_cookie

PRINTER = by_name("xerox")  # HTTPS, form login with a CSRF token
TECH = "user-demo-tech"


async def _settings_page(system: DemoSystem) -> tuple[str, httpx.Response]:
    launch = await system.open_session_as_demo_user(PRINTER.ip)
    sid = next(s.id for s in system.cloud.broker.live_sessions_of(TECH))
    parts = urlsplit(launch)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{parts.port}", timeout=20) as c:
        first = await c.get(f"{parts.path}?{parts.query}", headers={"Host": parts.netloc})
        page = await c.get("/settings", headers={"Host": parts.netloc, "Cookie": session_cookie(first)})
    await system.cloud.broker.close_session(sid, reason="credential test", actor="test")  # type: ignore[arg-type]
    return sid, page


async def _decision(system: DemoSystem, sid: str) -> dict[str, object]:
    await asyncio.sleep(0.3)
    flush = getattr(system.cloud.proxy, "flush_audit", None)
    if flush is not None:
        await flush()
    records = [r for r in await system.audit_events() if r.session_id == sid]
    assert all(PASSWORD not in str(r.details) for r in records)
    return next(r.details for r in records if r.type == "dwa.credentials_decision") | {
        "types": [r.type for r in records]}


async def _permissions(system: DemoSystem, technician: list[str]) -> None:
    async with system.cloud.db.transaction() as s:
        body = await rule_sets.load_ruleset(s, DEMO_DEALER.id) or {}
        defaults = {role.value: sorted(p) for role, p in DEFAULT_PERMISSIONS.items()}
        perms = {**defaults, **body.get("permissions", {}), "technician": technician}
        await rule_sets.save_ruleset(s, DEMO_DEALER.id, {**body, "permissions": perms}, actor="test",
                                     now=datetime.now(UTC))


async def test_stored_credential_signs_in_and_the_right_and_the_customer_decide(system: DemoSystem) -> None:
    device = await system.device_at(PRINTER.ip)
    vault = system.cloud.vault
    await vault.set(customer_id=DEMO_CUSTOMER.id, dealer_id=DEMO_DEALER.id, scope=CredentialScope.DEVICE,
                    target=device.id, kind=LoginKind.FORM, account=USERNAME, password=PASSWORD, actor="test")
    try:
        sid, page = await _settings_page(system)
        assert page.status_code == 200 and "Logged in as admin" in page.text, page.text[:300]
        assert "signed in to the device as admin by printgate" in page.text and PASSWORD not in page.text
        decided = await _decision(system, sid)
        assert decided["allow"] is True and decided["account"] == USERNAME
        assert "dwa.device_signed_in" in decided["types"]  # type: ignore[operator]

        await _permissions(system, ["dwa.*", "device.read"])  # the right taken away
        sid, page = await _settings_page(system)
        assert page.status_code == 302 and page.headers["location"].endswith("/userpost/login")
        decided = await _decision(system, sid)
        assert decided["allow"] is False and "credentials.role_not_permitted" in decided["reasons"]  # type: ignore[operator]

        await _permissions(system, ["dwa.*", "device.read", "credentials.use"])
        await vault.set_forbidden(customer_id=DEMO_CUSTOMER.id, dealer_id=DEMO_DEALER.id, forbidden=True,
                                  actor="test")
        sid, page = await _settings_page(system)
        assert page.status_code == 302
        decided = await _decision(system, sid)
        assert "credentials.customer_forbids" in decided["reasons"]  # type: ignore[operator]
    finally:
        await vault.set_forbidden(customer_id=DEMO_CUSTOMER.id, dealer_id=DEMO_DEALER.id, forbidden=False,
                                  actor="test")
        await vault.erase(customer_id=DEMO_CUSTOMER.id, dealer_id=DEMO_DEALER.id, scope=CredentialScope.DEVICE,
                          target=device.id, actor="test")


async def test_a_forbidden_credential_leaves_a_live_session_at_once(system: DemoSystem) -> None:
    """Issue 19 follow-up, item 3: the broker drops the login from the live route (as the portal
    asks after forbid/erase); the same session's next page is the device's own login."""
    device = await system.device_at(PRINTER.ip)
    vault = system.cloud.vault
    await vault.set(customer_id=DEMO_CUSTOMER.id, dealer_id=DEMO_DEALER.id, scope=CredentialScope.DEVICE,
                    target=device.id, kind=LoginKind.FORM, account=USERNAME, password=PASSWORD, actor="test")
    sid = ""
    try:
        launch = await system.open_session_as_demo_user(PRINTER.ip)
        sid = next(s.id for s in system.cloud.broker.live_sessions_of(TECH))
        parts = urlsplit(launch)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{parts.port}", timeout=20) as c:
            first = await c.get(f"{parts.path}?{parts.query}", headers={"Host": parts.netloc})
            headers = {"Host": parts.netloc, "Cookie": session_cookie(first)}
            page = await c.get("/settings", headers=headers)
            assert page.status_code == 200 and "Logged in as admin" in page.text
            dropped = await system.cloud.broker.drop_credentials(DEMO_CUSTOMER.id, reason="forbidden",
                                                                 actor="test")
            assert dropped == 1
            sync = getattr(system.cloud.proxy, "sync", None)
            if sync is not None:
                await sync()
            page = await c.get("/settings", headers=headers)
            assert page.status_code == 302 and page.headers["location"].endswith("/userpost/login")
        await asyncio.sleep(0.3)
        records = [r for r in await system.audit_events() if r.session_id == sid]
        assert [r.details["reason"] for r in records if r.type == "dwa.credentials_dropped"] == ["forbidden"]
    finally:
        if sid:
            await system.cloud.broker.close_session(sid, reason="credential test", actor="test")  # type: ignore[arg-type]
        await vault.erase(customer_id=DEMO_CUSTOMER.id, dealer_id=DEMO_DEALER.id, scope=CredentialScope.DEVICE,
                          target=device.id, actor="test")

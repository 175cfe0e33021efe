"""RBAC pages, invitations, password reset, customer remote-access choice,
policy editing and API tokens, driven over real HTTP."""

from __future__ import annotations

import re

import httpx
from fastapi import APIRouter

from portal.app import create_app
from printgate.domain import Role
from printgate.testing.portal import create_user, csrf_of, password_step, sign_in
from tests.portal.conftest import Portal


async def signed_in(portal: Portal, *roles: Role, **kw) -> tuple[httpx.AsyncClient, object]:  # type: ignore[no-untyped-def]
    user, secret = await create_user(portal.db, *roles, **kw)
    c = httpx.AsyncClient(base_url=portal.url, headers={"accept": "text/html"}, timeout=10)
    await sign_in(c, portal, user, secret)
    return c, user


async def post(c: httpx.AsyncClient, page: str, url: str, data: dict | None = None) -> httpx.Response:
    token = csrf_of((await c.get(page)).text)
    return await c.post(url, data={**(data or {}), "csrf_token": token})


async def test_dealer_admin_changes_roles_inside_own_dealer_only(portal: Portal) -> None:
    admin, admin_user = await signed_in(portal, Role.DEALER_ADMIN)
    tech, tech_user = await signed_in(portal, Role.TECHNICIAN)
    other, _ = await create_user(portal.db, Role.TECHNICIAN, dealer="d2")
    try:
        assert (await tech.get("/admin/users")).status_code == 403
        r = await post(admin, "/admin/users", f"/admin/users/{tech_user.id}/roles",
                       {"roles": ["viewer", "technician"]})
        assert r.status_code == 303
        changed = [e for e in portal.audit.of("rbac.roles_changed") if e.actor == admin_user.email]
        assert changed[-1].details["to"] == ["technician", "viewer"]
        # the target's e-mail is a personal (erasable) value, never hashed into the details
        assert tech_user.email not in str(changed[-1].details)
        assert changed[-1].personal.get("subject") == tech_user.email
        r = await post(admin, "/admin/users", f"/admin/users/{tech_user.id}/roles", {"roles": ["customer_admin"]})
        assert r.status_code == 422
        r = await post(admin, "/admin/users", f"/admin/users/{other.id}/roles", {"roles": ["viewer"]})
        assert r.status_code == 404
        r = await post(admin, "/admin/users", f"/admin/users/{admin_user.id}/roles", {"roles": ["viewer"]})
        assert r.status_code == 409
        # disabling ends the user's sessions at once
        r = await post(admin, "/admin/users", f"/admin/users/{tech_user.id}/disable", {"disabled": "true"})
        assert r.status_code == 303
        assert (await tech.get("/devices")).status_code == 303
    finally:
        await admin.aclose()
        await tech.aclose()


async def test_invitation_creates_an_account_that_can_sign_in_once(portal: Portal) -> None:
    admin, _ = await signed_in(portal, Role.DEALER_ADMIN)
    try:
        r = await post(admin, "/admin/users", "/admin/invitations",
                       {"email": "new.viewer@example.org", "roles": ["viewer"]})
        link = re.search(r'id="invite-link">([^<]+)<', r.text).group(1)
    finally:
        await admin.aclose()
    path = link.replace(portal.url, "")
    async with httpx.AsyncClient(base_url=portal.url, headers={"accept": "text/html"}) as c:
        page = await c.get(path)
        assert page.status_code == 200
        short = await c.post(path, data={"display_name": "New", "password": "short",
                                         "csrf_token": csrf_of(page.text)})
        assert short.status_code == 422 and "12 characters" in short.text
        r = await c.post(path, data={"display_name": "New", "password": "a long enough secret",
                                     "csrf_token": csrf_of(page.text)})
        assert r.status_code == 303
        assert (await c.get(path)).status_code == 410
        r = await password_step(c, "new.viewer@example.org", "a long enough secret")
        assert r.status_code == 303 and r.headers["location"] == "/devices"


async def test_invitation_for_an_existing_colleague_never_pretends_to_change_roles(portal: Portal) -> None:
    admin, _ = await signed_in(portal, Role.DEALER_ADMIN)
    tech_user, _ = await create_user(portal.db, Role.TECHNICIAN)
    try:
        # other roles than the account has: refused with what to do instead, no link made
        r = await post(admin, "/admin/users", "/admin/invitations",
                       {"email": tech_user.email.upper(), "roles": ["dealer_admin"]})
        assert r.status_code == 409
        assert "has an account already" in r.text and "change their roles" in r.text
        assert "invite-link" not in r.text
        # the same roles: a password-reset link, said as such
        r = await post(admin, "/admin/users", "/admin/invitations",
                       {"email": tech_user.email, "roles": ["technician"]})
        assert r.status_code == 200 and 'id="invite-link"' in r.text
        assert "choose a new password" in r.text
    finally:
        await admin.aclose()


async def test_customer_admin_switches_remote_access_off_and_technicians_are_refused(portal: Portal) -> None:
    cadmin, _ = await signed_in(portal, Role.CUSTOMER_ADMIN, dealer=None, customer="c-open", totp=False)
    tech, _ = await signed_in(portal, Role.TECHNICIAN)
    try:
        r = await post(cadmin, "/admin/tenants", "/admin/tenants/customers/c-open/remote-access", {"mode": "never"})
        assert r.status_code == 303
        r = await post(tech, "/devices", "/devices/dev-c-open/open")
        assert r.status_code == 403 and "customer.remote_access_never" in r.text
        # a customer admin cannot touch another customer
        r = await post(cadmin, "/admin/tenants", "/admin/tenants/customers/c-appr/remote-access", {"mode": "open"})
        assert r.status_code == 404
    finally:
        r = await post(cadmin, "/admin/tenants", "/admin/tenants/customers/c-open/remote-access", {"mode": "open"})
        await cadmin.aclose()
        await tech.aclose()


async def test_policy_edits_are_validated_versioned_and_enforced(portal: Portal) -> None:
    admin, admin_user = await signed_in(portal, Role.DEALER_ADMIN)
    tech, _ = await signed_in(portal, Role.TECHNICIAN)
    try:
        bad = await post(admin, "/admin/policy", "/admin/policy",
                         {"rules": '{"rules": [{"kind": "time_window", "id": "t", "timezone": "Mars/Base"}]}'})
        assert bad.status_code == 422 and "unknown time zone" in bad.text
        good = await post(admin, "/admin/policy", "/admin/policy", {"rules": (
            '{"rules": [{"kind": "deny", "id": "freeze", "description": "change freeze",'
            ' "scope": {"site_id": "s-c-open"}}]}')})
        assert good.status_code == 303
        page = await admin.get("/admin/policy")
        assert "version" in page.text and "freeze" in page.text
        r = await post(tech, "/devices", "/devices/dev-c-open/open")
        assert r.status_code == 403 and "change freeze" in r.text and "rule.deny" in r.text
        assert [e for e in portal.audit.of("policy.changed") if e.actor == admin_user.email]
    finally:
        await post(admin, "/admin/policy", "/admin/policy", {"rules": '{"rules": []}'})
        await admin.aclose()
        await tech.aclose()


async def test_api_token_scopes_and_revocation(portal: Portal) -> None:
    c, _ = await signed_in(portal, Role.TECHNICIAN)
    try:
        r = await post(c, "/tokens", "/tokens", {"name": "ci", "scopes": ["devices:read"], "days": "7"})
        token = re.search(r'id="new-token">([^<]+)<', r.text).group(1)
        async with httpx.AsyncClient(base_url=portal.url, headers={"authorization": f"Bearer {token}"}) as api:
            devices = await api.get("/api/devices")
            assert devices.status_code == 200
            names = {d["name"] for d in devices.json()}
            assert "Front desk LaserJet" in names and "Other dealer printer" not in names
            assert "password_hash" not in devices.text
            assert (await api.get("/api/sessions")).status_code == 403
            token_id = re.search(r'data-token-id="([0-9a-f]+)"', r.text).group(1)
            await post(c, "/tokens", f"/tokens/{token_id}/revoke")
            assert (await api.get("/api/devices")).status_code == 401
    finally:
        await c.aclose()


async def test_extra_routers_from_other_areas_are_mounted(portal: Portal) -> None:
    from printgate.testing.audit import RecordingAuditSink
    from printgate.testing.broker import PolicyBroker

    extra = APIRouter()

    @extra.get("/api/fleet/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    app = create_app(portal.settings, db=portal.db, broker=PolicyBroker(portal.db, portal.clock, portal.url),
                     audit=RecordingAuditSink(), extra_routers=[extra])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/api/fleet/ping")).json() == {"pong": "yes"}

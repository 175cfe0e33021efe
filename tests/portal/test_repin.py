"""Re-pinning a device's identity is a dealer admin's decision, audited; nobody else may do it."""

from __future__ import annotations

import httpx

from printgate.domain import Role
from printgate.store import devices
from printgate.store.models.core import DeviceRow
from printgate.testing.portal import create_user, csrf_of, sign_in
from tests.portal.conftest import Portal


async def _mark_changed(portal: Portal, device_id: str) -> None:
    async with portal.db.transaction() as s:  # test set-up: the state discovery leaves after a change
        row = await s.get(DeviceRow, device_id)
        assert row is not None
        row.identity_verified = False
        row.tls_fingerprint = "ab" * 32


async def test_dealer_admin_repins_a_changed_device_and_it_is_audited(
    portal: Portal, client: httpx.AsyncClient
) -> None:
    await _mark_changed(portal, "dev-c-open")
    admin, secret = await create_user(portal.db, Role.DEALER_ADMIN, Role.TECHNICIAN)
    await sign_in(client, portal, admin, secret)
    page = await client.get("/devices")
    assert "identity changed" in page.text and "Re-pin" in page.text
    r = await client.post("/devices/dev-c-open/repin", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 303
    async with portal.db.session() as s:
        device = await devices.get_device(s, "dev-c-open")
    assert device is not None and device.identity_verified and device.identity.tls_fingerprint is None
    (event,) = [e for e in portal.audit.of("device.repinned") if e.device_id == "dev-c-open"]
    assert event.actor == admin.email and event.details["old_tls_fingerprint"] == "ab" * 32


async def test_technicians_and_other_dealers_cannot_repin(portal: Portal, client: httpx.AsyncClient) -> None:
    await _mark_changed(portal, "dev-c-appr")
    tech, secret = await create_user(portal.db, Role.TECHNICIAN)
    await sign_in(client, portal, tech, secret)
    page = await client.get("/devices")
    assert "Re-pin" not in page.text
    r = await client.post("/devices/dev-c-appr/repin", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 403
    other_admin, other_secret = await create_user(portal.db, Role.DEALER_ADMIN, dealer="d2")
    async with httpx.AsyncClient(base_url=portal.url, headers={"accept": "text/html"}) as other:
        await sign_in(other, portal, other_admin, other_secret)
        page = await other.get("/devices")
        r = await other.post("/devices/dev-c-appr/repin", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 404
    async with portal.db.session() as s:
        device = await devices.get_device(s, "dev-c-appr")
    assert device is not None and not device.identity_verified

"""Per-tenant supply thresholds: a dealer administrator sets them on the fleet page (audited);
they drive the supply alerts of the dealer's devices from the next supplies reading on."""

from __future__ import annotations

from contextlib import aclosing

from fleet.ingest import ingest_payload
from printgate.domain import Role
from printgate.store.db import Database
from printgate.store.fleet import open_alerts
from printgate.testing.portal import csrf_of
from tests.fleet.conftest import T0, fleet_app, payload_of, reading_of, signed_in


async def test_a_dealer_admin_sets_the_thresholds_and_they_raise_alerts(fleet_db: Database) -> None:
    fp = fleet_app(fleet_db)
    client, admin = await signed_in(fp, Role.DEALER_ADMIN)
    async with aclosing(client):
        page = await client.get("/fleet")
        assert "warning at 15 % or less, critical at 5 % or less (the defaults)" in page.text
        bad = await client.post("/fleet/thresholds", data={
            "csrf_token": csrf_of(page.text), "warning_percent": "5", "critical_percent": "20"})
        r = await client.post("/fleet/thresholds", data={
            "csrf_token": csrf_of(page.text), "warning_percent": "30", "critical_percent": "10"})
        shown = await client.get("/fleet")
    assert bad.status_code == 422 and "e.g. warning 15, critical 5" in bad.text
    assert r.status_code == 303
    assert "warning at 30 % or less, critical at 10 % or less;" in shown.text
    [changed] = [e for e in fp.app.state.portal.audit.events if e.type == "config.changed"]  # type: ignore[attr-defined]
    assert changed.actor == admin.email and changed.details["after"] == [30, 10]
    assert changed.details["before"] == [15, 5]

    hp = reading_of("lab-jetdirect_m130nw-alerts", ip="127.0.20.15", at=T0)  # black toner at 28 %
    assert await ingest_payload(fleet_db, "a-c1", "b-1", payload_of([hp]))
    async with fleet_db.session() as s:
        low = [a.alert for a in await open_alerts(s, "dev-m130") if a.alert.group == "supplyThreshold"]
    assert [(a.severity, a.index) for a in low] == [("warning", 1)]


async def test_only_a_dealer_admin_may_change_the_thresholds(fleet_db: Database) -> None:
    fp = fleet_app(fleet_db)
    client, _ = await signed_in(fp, Role.TECHNICIAN)
    async with aclosing(client):
        page = await client.get("/fleet")
        assert 'id="thresholds-form"' not in page.text
        r = await client.post("/fleet/thresholds", data={
            "csrf_token": csrf_of(page.text), "warning_percent": "30", "critical_percent": "10"})
    assert r.status_code == 403


async def test_a_customers_users_see_the_thresholds_of_their_dealer(fleet_db: Database) -> None:
    from printgate.fleet_alerts import SupplyThresholds
    from printgate.store.readings_state import set_thresholds_of_tenant

    async with fleet_db.transaction() as s:
        await set_thresholds_of_tenant(s, "d1", SupplyThresholds(25, 8), by="admin@d1", now=T0)
    fp = fleet_app(fleet_db)
    client, _ = await signed_in(fp, Role.CUSTOMER_ADMIN, dealer=None, customer="c1")
    async with aclosing(client):
        page = await client.get("/fleet")
    assert "warning at 25 % or less, critical at 8 % or less;" in page.text
    assert 'id="thresholds-form"' not in page.text

"""A dealer's readings retention on the fleet page: shown to its users, set by a dealer
administrator (audited), refused out of range or for others."""

from __future__ import annotations

from contextlib import aclosing

from printgate.domain import Role, event_types
from printgate.store import readings_history as history
from printgate.store.db import Database
from printgate.testing.portal import csrf_of
from tests.fleet.conftest import fleet_app, signed_in


async def test_a_dealer_admin_sets_how_long_readings_are_kept(fleet_db: Database) -> None:
    fp = fleet_app(fleet_db)
    client, admin = await signed_in(fp, Role.DEALER_ADMIN)
    async with aclosing(client):
        page = await client.get("/fleet")
        assert "Readings history kept 400 days (the default)" in page.text and 'id="retention-form"' in page.text
        bad = await client.post("/fleet/retention", data={"csrf_token": csrf_of(page.text), "days": "3"})
        r = await client.post("/fleet/retention", data={"csrf_token": csrf_of(page.text), "days": "90"})
        shown = await client.get("/fleet")
    assert bad.status_code == 422 and "keep readings 7 to 3650 days, not 3" in bad.text
    assert r.status_code == 303 and "Readings history kept 90 days; older" in shown.text
    async with fleet_db.session() as s:
        assert await history.retention_of(s, "d1") == (90, True)
        assert await history.retention_of(s, "d2") == (history.DEFAULT_RETENTION_DAYS, False)
    [changed] = [e for e in fp.app.state.portal.audit.events  # type: ignore[attr-defined]
                 if e.type == event_types.FLEET_HISTORY_RETENTION_SET]
    assert changed.actor == admin.email and changed.details == {"days": 90, "before": None}


async def test_others_see_the_retention_but_may_not_change_it(fleet_db: Database) -> None:
    fp = fleet_app(fleet_db)
    client, _ = await signed_in(fp, Role.TECHNICIAN)
    async with aclosing(client):
        page = await client.get("/fleet")
        r = await client.post("/fleet/retention", data={"csrf_token": csrf_of(page.text), "days": "30"})
    assert "Readings history kept 400 days" in page.text and 'id="retention-form"' not in page.text
    assert r.status_code == 403
    async with fleet_db.session() as s:
        assert await history.retention_of(s, "d1") == (history.DEFAULT_RETENTION_DAYS, False)

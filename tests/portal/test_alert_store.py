"""Issue 20 in the store, on SQLite and PostgreSQL: a session's reason stored and read back, an alert
reason taken only from the device's own alerts, cleared alerts found, per-site modes, the customer's
view of sessions on its devices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from printgate.domain import (
    AgentId,
    AlertSeverity,
    DeviceId,
    DwaSession,
    DwaState,
    DwaTarget,
    RemoteAccessMode,
    SessionId,
    SessionReason,
    UserId,
)
from printgate.store import sessions, tenants
from printgate.store.db import Database
from printgate.store.models.core import SiteRow
from printgate.store.models.readings import DeviceAlertRow
from printgate.store.session_history import sessions_of_customer, sessions_of_user
from printgate.testing.portal import create_user
from printgate.testing.tenancy import Tenancy

NOW = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)


async def _seed(db: Database) -> tuple[int, int]:
    t = Tenancy().chain(dealer="d1", customer="c1", site="s1", agent="a1", online=True)
    t.customer("c2", "d1").site("s2", "c2").agent("a2", "s2", online=True)
    t.device("dev1", "s1", "a1", "127.0.20.1", name="Front desk").device("dev2", "s2", "a2", "127.0.20.2")
    await t.save(db)
    async with db.transaction() as s:
        mine = DeviceAlertRow(device_id="dev1", alert_key="k1", alert_index=1, severity="critical", group="marker",
                              code="markerTonerEmpty", description="Toner <empty>", raised_at=NOW,
                              last_seen_at=NOW)
        other = DeviceAlertRow(device_id="dev2", alert_key="k2", alert_index=1, severity="warning",
                               group="cover", code="coverOpen", description="Door open", raised_at=NOW,
                               last_seen_at=NOW)
        s.add_all([mine, other])
        await s.flush()
        return mine.id, other.id


async def test_alert_reason_is_only_the_devices_own_and_round_trips_with_the_session(db: Database) -> None:
    mine, other = await _seed(db)
    user, _ = await create_user(db, dealer="d1")
    async with db.transaction() as s:
        reason = await sessions.alert_reason(s, "dev1", mine)
        assert reason is not None and reason.alert_code == "markerTonerEmpty"
        assert reason.alert_severity == "critical" and reason.alert_description == "Toner <empty>"
        assert await sessions.alert_reason(s, "dev1", other) is None  # another device's alert
        assert await sessions.alert_reason(s, "dev1", 10**9) is None
        session = DwaSession(SessionId("sess1"), UserId(user.id), DeviceId("dev1"), AgentId("a1"),
                             DwaTarget("127.0.20.1", 80), NOW, NOW + timedelta(minutes=30), reason=reason)
        await sessions.save_session(s, session.transition(DwaState.AUTHORISED, at=NOW, reason="ok"))
        ticket = DwaSession(SessionId("sess2"), UserId(user.id), DeviceId("dev2"), AgentId("a2"),
                            DwaTarget("127.0.20.2", 80), NOW, NOW + timedelta(minutes=30),
                            reason=SessionReason.ticket("T-42"))
        await sessions.save_session(s, ticket.transition(DwaState.AUTHORISED, at=NOW, reason="ok"))
    async with db.session() as s:
        loaded = await sessions.load_session(s, "sess1")
        assert loaded is not None and loaded.reason == reason
        mine_now = {x.id: x.why for x in await sessions_of_user(s, user.id)}
        assert mine_now == {"sess1": reason, "sess2": SessionReason.ticket("T-42")}
        seen = await sessions_of_customer(s, "c1")
        assert [(x.id, x.technician) for x in seen] == [("sess1", user.email)]  # not c2's session
        assert seen[0].why == reason
        assert await sessions.alerts_cleared_at(s, [mine, other]) == {}


async def test_cleared_alerts_are_found_with_their_time(db: Database) -> None:
    mine, other = await _seed(db)
    cleared = NOW + timedelta(minutes=7)
    async with db.transaction() as s:
        row = await s.get(DeviceAlertRow, mine)
        assert row is not None
        row.cleared_at = cleared
    async with db.session() as s:
        assert await sessions.alerts_cleared_at(s, [mine, other]) == {mine: cleared}
        assert await sessions.alerts_cleared_at(s, []) == {}


async def test_a_site_inherits_its_customers_mode_until_it_has_its_own(db: Database) -> None:
    await _seed(db)
    async with db.transaction() as s:
        site = await tenants.get_site(s, "s1")
        assert site is not None and site.remote_access is None
        assert site.alert_min_severity is AlertSeverity.CRITICAL
        assert site.access_mode(RemoteAccessMode.APPROVAL_REQUIRED) is RemoteAccessMode.APPROVAL_REQUIRED
        before = await tenants.set_site_access(s, "s1", RemoteAccessMode.ALERT_AUTO, AlertSeverity.WARNING)
        assert before is not None and before.remote_access is None
        assert await tenants.set_site_access(s, "nope", None, AlertSeverity.CRITICAL) is None
    async with db.transaction() as s:
        found = await tenants.tenant_of_site(s, "s1")
        assert found is not None
        customer, site = found
        assert site.access_mode(customer.remote_access) is RemoteAccessMode.ALERT_AUTO
        assert site.alert_min_severity is AlertSeverity.WARNING
        row = await s.get(SiteRow, "s1")
        assert row is not None
        row.remote_access = "some-future-mode"  # a value this version does not know: fail closed
    async with db.session() as s:
        site = await tenants.get_site(s, "s1")
        assert site is not None and site.remote_access is RemoteAccessMode.NEVER


@pytest.mark.parametrize("text", ["<script>alert(1)</script>"])
async def test_free_text_reason_is_stored_as_given_and_escaped_only_when_shown(db: Database, text: str) -> None:
    await _seed(db)
    user, _ = await create_user(db, dealer="d1")
    reason = SessionReason.free_text(text)
    async with db.transaction() as s:
        session = DwaSession(SessionId("sess3"), UserId(user.id), DeviceId("dev1"), AgentId("a1"),
                             DwaTarget("127.0.20.1", 80), NOW, NOW + timedelta(minutes=30), reason=reason)
        await sessions.save_session(s, session)
    async with db.session() as s:
        loaded = await sessions.load_session(s, "sess3")
        assert loaded is not None and loaded.reason is not None and loaded.reason.text == text

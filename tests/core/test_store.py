"""Store round trips on SQLite and on the real PostgreSQL server."""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import inspect

from printgate.domain import (
    Agent,
    AgentId,
    Customer,
    CustomerId,
    Dealer,
    DealerId,
    Device,
    DeviceId,
    DeviceIdentity,
    DwaSession,
    DwaState,
    DwaTarget,
    Role,
    SessionId,
    Site,
    SiteId,
    User,
    UserId,
)
from printgate.store import devices, sessions, tenants, users
from printgate.store.db import Database

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


async def _seed(db: Database) -> None:
    async with db.transaction() as s:
        for dealer in ("d-a", "d-b"):
            await tenants.add_dealer(s, Dealer(DealerId(dealer), dealer.upper()))
        await s.flush()
        await tenants.add_customer(s, Customer(CustomerId("c-a"), DealerId("d-a"), "Acme"))
        await tenants.add_customer(s, Customer(CustomerId("c-b"), DealerId("d-b"), "Bolt"))
        await s.flush()
        await tenants.add_site(s, Site(SiteId("s-a"), CustomerId("c-a"), "HQ"))
        await tenants.add_site(s, Site(SiteId("s-b"), CustomerId("c-b"), "HQ"))
        await s.flush()
        await tenants.add_agent(s, Agent(AgentId("ag-a"), SiteId("s-a"), "agent A"))
        await tenants.add_agent(s, Agent(AgentId("ag-b"), SiteId("s-b"), "agent B"))
        await s.flush()
        await devices.add_device(s, Device(
            DeviceId("dev-a"), SiteId("s-a"), AgentId("ag-a"), "127.0.0.21",
            DeviceIdentity(serial="CN4711", mac="00:11:22:33:44:55", model="HL-5370DW"),
            name="Brother",
        ), now=NOW)
        await devices.add_device(s, Device(
            DeviceId("dev-b"), SiteId("s-b"), AgentId("ag-b"), "127.0.0.22",
            DeviceIdentity(serial="XB1"), name="Bolt printer",
        ), now=NOW)
        await tenants.add_user(s, User(
            UserId("u-a"), "tech@a.example", "Tech A", frozenset({Role.TECHNICIAN}),
            dealer_id=DealerId("d-a"),
        ), password_hash="x", totp_secret="ABC")


async def test_tenancy_and_devices_round_trip(db: Database) -> None:
    await _seed(db)
    async with db.session() as s:
        listed = await devices.list_devices_of_dealer(s, "d-a")
        assert [(d.id, c) for d, c in listed] == [("dev-a", "Acme")]
        device = await devices.get_device(s, "dev-a")
        assert device is not None and device.identity.serial == "CN4711"
        assert await devices.dealer_of_device(s, "dev-b") == ("d-b", "c-b")
        user = await tenants.get_user(s, "u-a")
        assert user is not None and user.roles == frozenset({Role.TECHNICIAN})
        found = await users.get_user_by_email(s, "TECH@a.example")
        assert found is not None and found.id == "u-a"


async def test_rediscovery_keeps_device_id_after_ip_change(db: Database) -> None:
    await _seed(db)
    async with db.transaction() as s:
        row = await devices.upsert_discovered(
            s, device_id="new-id", site_id="s-a", agent_id="ag-a", ip="127.0.0.99",
            identity=DeviceIdentity(serial="CN4711"), ews_port=80, ews_scheme="http",
            now=NOW + timedelta(hours=1),
        )
        assert row.id == "dev-a"
    async with db.session() as s:
        device = await devices.get_device(s, "dev-a")
        assert device is not None and device.ip == "127.0.0.99"
        assert await devices.get_device(s, "new-id") is None


async def test_session_state_and_history_persist(db: Database) -> None:
    await _seed(db)
    session = DwaSession(
        id=SessionId("sess1"), user_id=UserId("u-a"), device_id=DeviceId("dev-a"),
        agent_id=AgentId("ag-a"), target=DwaTarget("127.0.0.21", 80),
        created_at=NOW, expires_at=NOW + timedelta(minutes=30),
    ).transition(DwaState.AUTHORISED, at=NOW, reason="policy allowed")
    async with db.transaction() as s:
        await sessions.save_session(s, session)
    session = session.transition(DwaState.TUNNEL_OPEN, at=NOW, reason="forward ready")
    async with db.transaction() as s:
        await sessions.save_session(s, session)
        assert await sessions.live_session_ids(s) == ["sess1"]
    async with db.session() as s:
        loaded = await sessions.load_session(s, "sess1")
    assert loaded == session
    assert loaded.created_at.tzinfo is not None


async def test_the_plain_audit_table_is_gone_and_the_chained_log_remains(db: Database) -> None:
    def table_names(conn: Any) -> set[str]:
        return set(inspect(conn).get_table_names())

    async with db.engine.connect() as conn:
        names = await conn.run_sync(table_names)
    assert "audit_events" not in names  # dropped by 0009: the chained log is the only audit store
    assert {"audit_records", "audit_checkpoints"} <= names


def test_display_name_is_short_and_falls_back() -> None:
    long_oki = ("OKI OkiLAN 9450g Rev.00.69 10/100/1000BASE Ethernet PrintServer: Attached to MC873 "
                "Rev.07.87 : Copyright (c) 2015 Oki Data Corporation. All rights reserved.")
    assert devices.display_name(DeviceIdentity(model=long_oki), "10.0.0.7") == "OKI OkiLAN 9450g"
    xerox = "Xerox AltaLink C8045; SS 100.002.057.09608, NC 100.002.09608"
    assert devices.display_name(DeviceIdentity(model=xerox), "10.0.0.7") == "Xerox AltaLink C8045"
    assert devices.display_name(DeviceIdentity(sys_name="printer-3"), "10.0.0.7") == "printer-3"
    assert devices.display_name(DeviceIdentity(), "10.0.0.7") == "10.0.0.7"
    assert len(devices.display_name(DeviceIdentity(model="X" * 200), "ip")) == 60

"""Stable device identity: re-inventory never duplicates a printer, a firmware update never locks it out.

Identities come from the real recordings through the agent's own parser
(the lab Xerox has neither serial nor MAC); the gateway's inventory rule
(``AgentEvents.on_inventory``) runs on a real store, both backends.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command

from agent.snmp.parsing import identity_from
from agent.verify import identity_differences
from gateway.agent_events import AgentEvents
from lab import snmprec
from lab.snmp import recording_path
from printgate.domain import DeviceIdentity, DiscoveryResult, DiscoveryStatus, SiteId
from printgate.store import devices
from printgate.store.db import Database, alembic_config
from printgate.store.models.core import DeviceRow
from printgate.store.models.readings import DeviceStateRow, ReadingRow
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.tenancy import Tenancy
from printgate.wire import convert

AGENT, SITE = "agent-1", SiteId("site-1")


class Nobody:
    """No sessions, no presence: inventory rules only."""

    async def resume_tunnels(self, agent_id: str) -> int:
        return 0

    async def agent_lost(self, agent_id: str) -> None:
        return None

    async def drop_orphans(self, agent_id: str) -> int:
        return 0

    def command_result(self, command_id: str, *, ok: bool, message: str) -> str | None:
        return None

    async def close_session(self, session_id: object, *, reason: str, actor: str) -> None:
        return None

    def is_online(self, agent_id: str) -> bool:
        return True


@pytest.fixture
async def events(db: Database) -> AsyncIterator[tuple[AgentEvents, RecordingAuditSink]]:
    await Tenancy().chain(dealer="dealer-1", customer="cust-1", site=SITE, agent=AGENT).save(db)
    audit = RecordingAuditSink()
    ev = AgentEvents(db=db, audit=audit, sessions=Nobody(), presence=Nobody(), loss_grace_s=60)  # type: ignore[arg-type]
    yield ev, audit
    await ev.aclose()


def recorded(name: str, ip: str) -> DeviceIdentity:
    identity, _ = identity_from(snmprec.load(recording_path(name)), ip=ip)
    return identity


def inventory(ip: str, identity: DeviceIdentity):  # type: ignore[no-untyped-def]
    return convert.discovered_to_wire(DiscoveryResult(ip, DiscoveryStatus.PRINTER, "", identity), ews_port=80)


async def rows(db: Database) -> list[DeviceRow]:
    async with db.session() as s:
        return list((await s.scalars(sa.select(DeviceRow))).all())


async def test_a_printer_without_serial_or_mac_keeps_one_row_over_many_inventories(events, db: Database) -> None:  # type: ignore[no-untyped-def]
    ev, _ = events
    xerox = recorded("xerox", "10.0.0.21")
    assert xerox.serial is None and xerox.mac is None and xerox.sys_object_id  # the lab Xerox
    for _ in range(5):
        await ev.on_inventory(AGENT, [inventory("10.0.0.21", xerox)])
    assert len(await rows(db)) == 1


async def test_a_printer_without_serial_is_found_again_by_its_mac_at_a_new_address(events, db: Database) -> None:  # type: ignore[no-untyped-def]
    ev, _ = events
    brother = replace(recorded("brother_hl5370dw", "10.0.0.11"), serial=None)
    assert brother.mac
    await ev.on_inventory(AGENT, [inventory("10.0.0.11", brother)])
    await ev.on_inventory(AGENT, [inventory("10.0.0.12", brother)])
    [row] = await rows(db)
    assert row.ip == "10.0.0.12"


async def test_a_firmware_update_is_recorded_and_never_locks_the_printer_out(events, db: Database) -> None:  # type: ignore[no-untyped-def]
    ev, audit = events
    before = recorded("brother_hl5370dw", "10.0.0.11")
    # a model that is the whole description, firmware version included
    before = replace(before, model="Brother NC-6800h, Firmware Ver.1.01  (08.12.12),MID 84UB05")
    after = replace(before, model="Brother NC-6800h, Firmware Ver.1.15  (11.03.19),MID 84UB05")
    await ev.on_inventory(AGENT, [inventory("10.0.0.11", before)])
    await ev.on_inventory(AGENT, [inventory("10.0.0.11", after)])

    [row] = await rows(db)
    assert row.identity_verified is True
    assert row.model == after.model and row.previous_model == before.model and row.model_changed_at is not None
    [changed] = [e for e in audit.events if e.type == "device.firmware_changed"]
    assert changed.device_id == row.id and changed.details["model_before"] == before.model
    assert "device.identity_changed" not in audit.types()
    # the agent's check before a tunnel agrees: serial and MAC match, the model text does not matter
    assert identity_differences(before, after) == []


async def test_another_printer_of_the_same_model_at_the_address_is_still_refused(events, db: Database) -> None:  # type: ignore[no-untyped-def]
    ev, audit = events
    first = recorded("brother_hl5370dw", "10.0.0.11")
    other = replace(first, serial="OTHER-SERIAL", mac="00:11:22:33:44:55")
    await ev.on_inventory(AGENT, [inventory("10.0.0.11", first)])
    await ev.on_inventory(AGENT, [inventory("10.0.0.11", other)])
    by_serial = {r.serial: r for r in await rows(db)}
    assert by_serial[first.serial].identity_verified is False
    assert "device.identity_changed" in audit.types()
    assert identity_differences(first, other) == ["serial", "mac"]


def test_without_serial_and_mac_the_normalised_model_and_maker_decide() -> None:
    xerox = recorded("xerox", "10.0.0.21")
    firmware = replace(xerox, model=f"{xerox.model}; SS 100.002.057.09999, NC 100.002.09999")
    assert identity_differences(xerox, firmware) == []
    assert identity_differences(xerox, replace(xerox, model="Xerox VersaLink C405")) == ["model"]
    assert identity_differences(xerox, replace(xerox, sys_object_id="1.3.6.1.4.1.11.2.3.9.1")) == ["sys_object_id"]


async def test_migration_0010_merges_todays_duplicates(database_url: str) -> None:
    cfg = alembic_config(database_url)
    await asyncio.to_thread(command.upgrade, cfg, "heads")
    await asyncio.to_thread(command.downgrade, cfg, "0006_fleet")  # the schema before 0010
    t0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    async with Database(database_url) as db:
        await Tenancy().chain(dealer="dealer-1", customer="cust-1", site=SITE, agent=AGENT).save(db)
        async with db.transaction() as s:
            ids = []
            for n in range(5):  # the Xerox, one row per inventory
                did = f"xerox-{n}"
                ids.append(did)
                await s.execute(sa.insert(DeviceRow.__table__).values(
                    id=did, site_id=SITE, agent_id=AGENT, ip="10.0.0.21", name="Xerox", ews_port=80,
                    ews_scheme="http", sys_object_id="1.3.6.1.4.1.253.8.62.1.35.2.3.1.1", model="Xerox AltaLink C8045",
                    labels=[], blocked=False, identity_verified=True,
                    first_seen=t0.replace(minute=n), last_seen=t0.replace(minute=n),
                ))
                await s.execute(sa.insert(ReadingRow.__table__).values(
                    id=uuid.uuid4().hex, agent_id=AGENT, batch_id=f"b{n}", ip="10.0.0.21",
                    taken_at=t0.replace(minute=n), kinds="counters", body={}, device_id=did,
                ))
                await s.execute(sa.insert(DeviceStateRow.__table__).values(
                    device_id=did, page_count=100 + n, error_state=[],
                ))
            await s.execute(sa.insert(DeviceRow.__table__).values(  # another printer stays
                id="hp", site_id=SITE, agent_id=AGENT, ip="10.0.0.15", name="HP", ews_port=80, ews_scheme="http",
                serial="VNCRC48198", labels=[], blocked=False, identity_verified=True, first_seen=t0, last_seen=t0,
            ))
    await asyncio.to_thread(command.upgrade, cfg, "heads")
    async with Database(database_url) as db, db.session() as s:
        left = sorted((await s.scalars(sa.select(DeviceRow.id))).all())
        readings = (await s.scalars(sa.select(ReadingRow.device_id))).all()
        state = await s.get(DeviceStateRow, "xerox-0")
        found = await devices.find_by_identity(s, SITE, DeviceIdentity(
            model="Xerox AltaLink C8045", sys_object_id="1.3.6.1.4.1.253.8.62.1.35.2.3.1.1"), ip="10.0.0.21")
    assert left == ["hp", "xerox-0"]  # the oldest row keeps its id
    assert set(readings) == {"xerox-0"} and len(readings) == 5
    assert state is not None and state.page_count == 104  # the freshest row's state
    assert found is not None and found.id == "xerox-0"


async def test_a_firmware_change_is_shown_on_the_device_page(fleet_db: Database) -> None:
    from contextlib import aclosing

    from printgate.domain import Role
    from tests.fleet.conftest import fleet_app, signed_in

    hp = recorded("jetdirect_m130nw", "127.0.20.15")
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    async with fleet_db.transaction() as s:  # dev-m130 was recorded with model "recorded"
        await devices.upsert_discovered(s, device_id="unused", site_id="s-c1", agent_id="a-c1", ip="127.0.20.15",
                                        identity=replace(hp, model="HP LaserJet MFP M130nw FW 20201023"),
                                        ews_port=80, ews_scheme="http", now=now)
    fp = fleet_app(fleet_db)
    client, _ = await signed_in(fp, Role.TECHNICIAN)
    async with aclosing(client):
        detail = (await client.get("/api/fleet/devices/dev-m130", headers={"accept": "application/json"})).json()
        page = await client.get("/fleet/dev-m130")
    assert detail["previous_model"] == "recorded" and detail["model_changed_at"].startswith("2026-12-01T09:00")
    assert "firmware or description changed 2026-12-01 09:00 UTC; before: recorded" in page.text

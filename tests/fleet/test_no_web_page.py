"""A printer SNMP found is a monitored device even when no web page answered (issue 13 follow-up).

The agent's own inventory line (``agent.runtime.inventory_entry`` with no EWS endpoint, as when
none of its ``ews_candidates`` answered) goes through the gateway's inventory rule
(``AgentEvents.on_inventory``) on a real store, both backends; the readings of that printer are
then mapped to it by the cloud's ingest, and remote access to it is refused by policy with a reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from agent.ews_probe import EwsEndpoint
from agent.runtime import inventory_entry
from agent.snmp.parsing import identity_from
from fleet.ingest import ingest_payload
from gateway.agent_events import AgentEvents
from lab import snmprec
from lab.snmp import recording_path
from policy import Action, default_ruleset, evaluate, load_policy
from printgate import metrics
from printgate.domain import DiscoveryResult, DiscoveryStatus, Role, SiteId
from printgate.store import devices
from printgate.store.db import Database
from printgate.store.models.core import DeviceRow
from printgate.store.models.readings import ReadingRow
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.tenancy import Tenancy
from tests.fleet.conftest import FleetPortal, payload_of, reading_of, signed_in
from tests.fleet.test_device_identity import Nobody
from tests.unit.policy.conftest import make_context, make_resource, make_subject

AGENT, SITE = "agent-1", SiteId("site-1")
JSON = {"accept": "application/json"}
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def events(db: Database) -> AsyncIterator[tuple[AgentEvents, RecordingAuditSink]]:
    await Tenancy().chain(dealer="dealer-1", customer="cust-1", site=SITE, agent=AGENT).save(db)
    audit = RecordingAuditSink()
    ev = AgentEvents(db=db, audit=audit, sessions=Nobody(), presence=Nobody(), loss_grace_s=60)  # type: ignore[arg-type]
    yield ev, audit
    await ev.aclose()


def found(name: str, ip: str) -> DiscoveryResult:
    identity, _ = identity_from(snmprec.load(recording_path(name)), ip=ip)
    return DiscoveryResult(ip, DiscoveryStatus.PRINTER, "", identity)


async def test_a_printer_without_web_page_becomes_a_monitored_device(events, db: Database) -> None:  # type: ignore[no-untyped-def]
    ev, audit = events
    ip = "10.0.0.15"
    await ev.on_inventory(AGENT, [inventory_entry(found("jetdirect_m130nw", ip), None)])

    async with db.session() as s:
        [row] = list((await s.scalars(sa.select(DeviceRow))).all())
    assert row.ip == ip and row.ews_port == 0
    [inv] = [e for e in audit.events if e.type == "agent.inventory"]
    assert inv.details["printers"] == 1 and inv.details["without_web_page"] == 1

    # its readings are mapped to it (monitoring works), not left unmapped
    r = reading_of("jetdirect_m130nw", ip=ip, at=T0)
    assert await ingest_payload(db, AGENT, "b-1", payload_of([r])) is True
    async with db.session() as s:
        mapped = (await s.execute(sa.select(ReadingRow.device_id))).scalars().all()
        device = await devices.get_device(s, row.id)
    assert mapped == [row.id]

    # remote access is refused with a reason naming the missing web page and what to do
    assert device is not None and device.ews_port == 0
    d = evaluate(load_policy(default_ruleset("d1")), make_subject(), Action.DWA_OPEN, make_resource(device), make_context())
    [why] = [r for r in d.reasons if r.code == "device.no_web_page"]
    assert not d.allow and "ews_candidates" in why.message


async def test_the_device_follows_its_web_page_from_sweep_to_sweep(events, db: Database) -> None:  # type: ignore[no-untyped-def]
    ev, _ = events
    ip = "10.0.0.15"

    async def sweep(endpoint: EwsEndpoint | None) -> tuple[int, str]:
        await ev.on_inventory(AGENT, [inventory_entry(found("jetdirect_m130nw", ip), endpoint)])
        async with db.session() as s:
            [row] = list((await s.scalars(sa.select(DeviceRow))).all())
        return row.ews_port, row.ews_scheme

    assert await sweep(EwsEndpoint(port=8443, scheme="https")) == (8443, "https")
    assert await sweep(None) == (0, "")  # its web server went away: no tunnel to a stale port
    assert await sweep(EwsEndpoint(port=80, scheme="http")) == (80, "http")


async def test_unmapped_readings_are_warned_and_counted(events, db: Database) -> None:  # type: ignore[no-untyped-def]
    before = metrics.READINGS_UNMAPPED.labels(AGENT)._value.get()
    r = reading_of("jetdirect_m130nw", ip="10.0.0.99", at=T0)  # no device inventoried at all
    with capture_logs() as logged:
        assert await ingest_payload(db, AGENT, "b-2", payload_of([r])) is True
    assert metrics.READINGS_UNMAPPED.labels(AGENT)._value.get() == before + 1
    [warned] = [e for e in logged if e["event"] == "readings.unmapped"]
    assert warned["log_level"] == "warning" and warned["count"] == 1


async def test_the_device_pages_say_no_web_page_was_found(fleet_portal: FleetPortal) -> None:
    async with fleet_portal.db.transaction() as s:  # what the inventory records for such a printer
        row = await s.get(DeviceRow, "dev-canon")
        assert row is not None
        row.ews_port, row.ews_scheme = 0, ""
    client, _ = await signed_in(fleet_portal, Role.TECHNICIAN)
    async with aclosing(client):
        canon = (await client.get("/api/fleet/devices/dev-canon", headers=JSON)).json()
        m130 = (await client.get("/api/fleet/devices/dev-m130", headers=JSON)).json()
        page = (await client.get("/fleet/dev-canon")).text
        listing = (await client.get("/devices")).text
    assert canon["web_page"] is None and m130["web_page"] == "http, port 80"
    assert 'id="web-page">none found' in page and "ews_candidates" in page
    assert listing.count("no web page found") == 1  # the Canon only


async def test_the_agents_page_shows_readings_that_matched_no_device(fleet_portal: FleetPortal) -> None:
    stray = reading_of("okilan_9450g", ip="127.0.20.18", at=T0)  # a printer a-c1 never inventoried
    mapped = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    assert await ingest_payload(fleet_portal.db, "a-c1", "b-stray", payload_of([stray, mapped])) is True
    client, _ = await signed_in(fleet_portal, Role.DEALER_ADMIN)
    async with aclosing(client):
        page = (await client.get("/agents")).text
    row = page[page.index('data-agent-id="a-c1"'):]
    assert "1 reading matched no device" in row[:row.index("</tr>")]
    other = page[page.index('data-agent-id="a-c2"'):]
    assert "matched no device" not in other[:other.index("</tr>")]

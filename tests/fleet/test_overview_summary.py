"""The overview reads each device's open alerts and lowest consumable from ``device_states``
(migration 0023: kept by triggers on ``device_alerts``/``device_supplies``, whoever writes them),
on SQLite and PostgreSQL; the text search goes through the trigram index on PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import sqlalchemy as sa

from fleet.ingest import ingest_batch
from fleet.queries import overview
from printgate.domain import SupplyLevel
from printgate.fleet_alerts import SupplyThresholds
from printgate.store import fleet as fleet_store
from printgate.store.db import Database
from printgate.store.fleet import FleetFilter, TenantScope
from printgate.store.readings_state import set_thresholds_of_tenant
from tests.fleet.conftest import T0, reading_of

SUMMARY = "SELECT open_alerts, alert_severity, lowest_percent FROM device_states WHERE device_id = :d"
TRUTH = """SELECT (SELECT count(*) FROM device_alerts WHERE device_id = :d AND cleared_at IS NULL),
  coalesce((SELECT max(CASE WHEN severity = 'critical' THEN 3 ELSE 2 END) FROM device_alerts
            WHERE device_id = :d AND cleared_at IS NULL), 0),
  (SELECT min(percent) FROM device_supplies WHERE device_id = :d AND percent IS NOT NULL
   AND NOT (lower(type) LIKE 'waste%' OR lower(description) LIKE '%waste%'))"""


async def _summary(db: Database, device: str) -> tuple[tuple[object, ...], tuple[object, ...]]:
    async with db.session() as s:
        kept = tuple((await s.execute(sa.text(SUMMARY), {"d": device})).one())
        truth = tuple((await s.execute(sa.text(TRUTH), {"d": device})).one())
    return kept, truth


async def test_device_states_keep_open_alerts_and_lowest_supply_as_they_change(fleet_db: Database) -> None:
    alerting = reading_of("lab-jetdirect_m130nw-alerts", ip="127.0.20.15", at=T0)
    assert alerting.alerts and alerting.supplies
    await ingest_batch(fleet_db, "a-c1", "b1", [alerting])
    kept, truth = await _summary(fleet_db, "dev-m130")
    assert kept == truth and int(str(kept[0])) > 0 and kept[2] is not None
    # later: the alerts clear and the toner drops; a waste container at 1 % never counts
    toner = [replace(s, level=3, max_capacity=100) for s in alerting.supplies if "waste" not in s.type.lower()][:1]
    waste = SupplyLevel(99, "Waste toner box", "wasteToner", None, "percent", 100, 1)
    calm = replace(reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0 + timedelta(hours=1)),
                   supplies=(*toner, waste))
    await ingest_batch(fleet_db, "a-c1", "b2", [calm])
    before = int(str(kept[0]))
    kept, truth = await _summary(fleet_db, "dev-m130")
    assert kept == truth == (1, 3, 3.0)  # the printer's alerts cleared; the toner's own (critical) alert opened
    assert before > 1
    async with fleet_db.transaction() as s:  # any writer: a plain delete, an update
        await s.execute(sa.text("DELETE FROM device_supplies WHERE device_id = 'dev-m130' AND supply_index <> 99"))
        await s.execute(sa.text("UPDATE device_alerts SET cleared_at = last_seen_at WHERE device_id = 'dev-m130'"))
    kept, truth = await _summary(fleet_db, "dev-m130")
    assert kept == truth == (0, 0, None)


async def test_alerts_of_a_device_that_never_reported_count_too(fleet_db: Database) -> None:
    async with fleet_db.transaction() as s:  # e.g. written by another part: no device_states row yet
        await s.execute(sa.text(
            "INSERT INTO device_alerts (device_id, alert_key, alert_index, severity, \"group\", code, description, "
            "raised_at, last_seen_at) VALUES ('dev-canon', 'k1', 1, 'critical', 'jam', 'jam', 'Paper jam', :t, :t)"),
            {"t": T0})
    assert (await _summary(fleet_db, "dev-canon"))[0] == (1, 3, None)
    async with fleet_db.session() as s:
        seen = await overview(s, TenantScope(dealer_id="d1"))
    assert (seen.counts.critical, seen.counts.alerts, seen.counts.no_reading) == (1, 1, 3)
    assert seen.page.devices[0].device.id == "dev-canon"  # the worst first


async def test_overview_counts_low_supplies_at_the_dealers_current_threshold(fleet_db: Database) -> None:
    r = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    black = [replace(s, level=30, max_capacity=100) for s in r.supplies if "waste" not in s.type.lower()][:1]
    await ingest_batch(fleet_db, "a-c1", "b1", [replace(r, supplies=tuple(black))])
    scope = TenantScope(dealer_id="d1")
    async with fleet_db.session() as s:
        assert (await overview(s, scope)).counts.low_supply == 0  # 30 % > the default warning (20 %)
    async with fleet_db.transaction() as s:
        await set_thresholds_of_tenant(s, "d1", SupplyThresholds(35, 5), by="admin@d1.test", now=T0)
    async with fleet_db.session() as s:
        seen = await overview(s, scope, where=FleetFilter(problem="low_supply"))
    assert seen.counts.low_supply == 1 and [d.device.id for d in seen.page.devices] == ["dev-m130"]


async def test_search_finds_devices_sites_and_customers_and_uses_the_trigram_index(fleet_db: Database) -> None:
    scope = TenantScope(dealer_id="d1")
    async with fleet_db.session() as s:
        for text, expected in (("front desk", {"dev-m130"}), ("127.0.20.1", {"dev-m130", "dev-canon", "dev-brother"}),
                               ("hq c2", {"dev-brother"}), ("VNCRC", {"dev-m130"}), ("100%", set())):
            page = (await overview(s, scope, where=FleetFilter(text=text))).page
            assert {d.device.id for d in page.devices} == expected, text
            assert page.total == len(expected)
        if fleet_db.dialect != "postgresql":
            return
        has_trgm = (await s.execute(sa.text("SELECT to_regclass(:i)"), {"i": fleet_store.SEARCH_INDEX})).scalar_one()
        if has_trgm is None:
            return  # pg_trgm could not be created here: the search scans
        await s.execute(sa.text("SET LOCAL enable_seqscan = off"))  # a tiny table: make the plan show the index
        sql = sa.select(sa.literal(1)).select_from(fleet_store.DeviceRow).where(fleet_store._text_match("front"))
        compiled = str(sql.compile(dialect=s.get_bind().dialect, compile_kwargs={"literal_binds": True}))
        plan = "\n".join((await s.execute(sa.text("EXPLAIN " + compiled))).scalars())
    assert fleet_store.SEARCH_INDEX in plan

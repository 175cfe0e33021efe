"""Issue 17 finding 5 (SQLite and PostgreSQL, through ingest): one bogus page count (2^63-1) no
longer freezes a device's page count for good. A count above 10^10 pages or a rise faster than
1,000 pages a second is kept in the history but not applied; a device frozen by such a value
before this rule takes the next plausible reading."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from fleet.ingest import ingest_batch
from printgate.domain import CounterValue, Reading
from printgate.store.db import Database
from printgate.store.fleet import TenantScope, fleet_device
from printgate.store.readings import DeviceState, readings_for, upsert_states
from tests.fleet.conftest import T0, reading_of

D1 = TenantScope(dealer_id="d1")
BOGUS = (1 << 63) - 1


def _count(at_minutes: int, value: int, rid: str) -> Reading:
    r = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0 + timedelta(minutes=at_minutes))
    return replace(r, id=rid, counters=(CounterValue("marker.1.1.life", value, "impressions"),))


async def _page_count(db: Database) -> int | None:
    async with db.session() as s:
        f = await fleet_device(s, D1, "dev-m130")
    assert f is not None
    return f.page_count


async def test_a_bogus_page_count_is_not_applied_and_a_frozen_one_recovers(fleet_db: Database) -> None:
    await ingest_batch(fleet_db, "a-c1", "b-1", [_count(0, 15_000, "r-1")])
    await ingest_batch(fleet_db, "a-c1", "b-2", [_count(5, BOGUS, "r-bogus")])
    assert await _page_count(fleet_db) == 15_000  # not applied ...
    assert "r-bogus" in {r.id for r in await readings_for(fleet_db, device_id="dev-m130")}  # ... but kept
    await ingest_batch(fleet_db, "a-c1", "b-3", [_count(6, 15_000 + 2_000_000, "r-jump")])  # 2M pages a minute
    assert await _page_count(fleet_db) == 15_000
    await ingest_batch(fleet_db, "a-c1", "b-4", [_count(10, 15_100, "r-2")])
    assert await _page_count(fleet_db) == 15_100  # the printer's real count goes on

    # a device frozen at 2^63-1 by the rule before (stored state): the next plausible reading wins
    async with fleet_db.transaction() as s:
        await upsert_states(s, [DeviceState("dev-m130", last_reading_at=T0 + timedelta(minutes=20),
                                            counters_at=T0 + timedelta(minutes=20), page_count=BOGUS,
                                            error_state=[])])
    await ingest_batch(fleet_db, "a-c1", "b-5", [_count(30, 15_200, "r-3")])
    assert await _page_count(fleet_db) == 15_200

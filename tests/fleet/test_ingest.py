"""Cloud ingestion of agent uploads: readings from real recordings, mapped to
devices, current supplies and alerts kept, duplicates and bad payloads."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from fleet.decode import decode_v1
from fleet.ingest import ingest_payload, store_decoded
from printgate.domain import ReadingKind, SupplyState
from printgate.errors import ReadingsPayloadInvalid
from printgate.store.db import Database
from printgate.store.fleet import TenantScope, current_supplies, fleet_device, open_alerts
from printgate.store.models.readings import DeviceAlertRow, ReadingBatchRow, ReadingRow
from printgate.store.readings import count_readings, readings_for
from tests.fleet.conftest import T0, days, payload_of, reading_of

D1 = TenantScope(dealer_id="d1")


async def test_ingested_reading_sets_current_supplies_counters_and_status_from_the_recording(
    fleet_db: Database,
) -> None:
    r = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    assert r.supplies and r.counters  # the recording has both
    assert await ingest_payload(fleet_db, "a-c1", "b-1", payload_of([r])) is True
    async with fleet_db.session() as s:
        f = await fleet_device(s, D1, "dev-m130")
        supplies = await current_supplies(s, "dev-m130")
    assert f is not None
    assert f.last_reading_at == T0
    assert f.page_count == sum(c.value for c in r.counters if c.name.startswith("marker."))
    assert [c.supply for c in supplies] == sorted(r.supplies, key=lambda x: x.index)
    assert f.lowest_supply == min(r.supplies, key=lambda x: x.percent or 101)
    assert f.agent_online is True
    stored = await readings_for(fleet_db, device_id="dev-m130")
    assert stored == [r]


async def test_reading_maps_by_serial_first_then_ip_and_never_to_another_site(fleet_db: Database) -> None:
    m130 = reading_of("jetdirect_m130nw", ip="127.0.20.99", at=T0)  # moved: new ip, same serial
    canon = reading_of("canonprinter_tm", ip="127.0.20.12", at=T0)  # no serial in the recording
    assert canon.serial is None
    stray = reading_of("brother_hl5370dw", ip="127.0.20.11", at=T0)  # Brother lives at c2, not a-c1's site
    assert await ingest_payload(fleet_db, "a-c1", "b-1", payload_of([m130, canon, stray])) is True
    async with fleet_db.session() as s:
        got = dict((await s.execute(select(ReadingRow.id, ReadingRow.device_id))).tuples().all())
    assert got == {m130.id: "dev-m130", canon.id: "dev-canon", stray.id: None}
    assert await count_readings(fleet_db) == 3  # unmapped readings are kept, not lost
    async with fleet_db.session() as s:
        foreign = await fleet_device(s, TenantScope(dealer_id="d2"), "dev-foreign")
    assert foreign is not None and foreign.last_reading_at is None


async def test_duplicate_batch_is_ignored_and_changes_nothing(fleet_db: Database) -> None:
    first = payload_of([reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)])
    assert await ingest_payload(fleet_db, "a-c1", "b-1", first) is True
    again = payload_of([reading_of("lab-jetdirect_m130nw-alerts", ip="127.0.20.15", at=T0 + days(1))])
    assert await ingest_payload(fleet_db, "a-c1", "b-1", again) is False
    assert await count_readings(fleet_db) == 1
    async with fleet_db.session() as s:
        assert await open_alerts(s, "dev-m130") == []
    # the same batch id from another agent is a different batch
    assert await ingest_payload(fleet_db, "a-c3", "b-1", again) is True


@pytest.mark.parametrize("payload, why", [
    (b"\xff\xfe not utf-8", "not UTF-8"),
    (b'{"readings": [', "not JSON"),
    (b'[{"id": "x"}]', '"readings" list'),
    (b'{"readings": {"id": "x"}}', '"readings" list'),
])
async def test_malformed_payload_is_refused_with_a_reason_and_nothing_is_lost(
    fleet_db: Database, payload: bytes, why: str
) -> None:
    good = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    assert await ingest_payload(fleet_db, "a-c1", "b-good", payload_of([good])) is True
    with pytest.raises(ReadingsPayloadInvalid) as info:
        await ingest_payload(fleet_db, "a-c1", "b-bad", payload)
    assert why in info.value.message and "nothing stored" in info.value.message
    assert info.value.code == "readings_payload_invalid"
    assert await readings_for(fleet_db, device_id="dev-m130") == [good]
    async with fleet_db.session() as s:
        assert await s.get(ReadingBatchRow, ("a-c1", "b-bad")) is None
    # the agent can resend the batch (same id) once fixed
    fixed = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0 + days(1))
    assert await ingest_payload(fleet_db, "a-c1", "b-bad", payload_of([fixed])) is True


async def test_one_bad_reading_is_refused_on_its_own_with_a_reason_and_the_others_are_stored(
    fleet_db: Database,
) -> None:
    good = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0).to_dict()
    bad = dict(good, id="other", taken_at="2025-03-01T08:00:00", kinds=["counters"])  # no time zone
    wrong_kind = dict(good, id="k", kinds=["toner"])
    body = json.dumps({"readings": [good, bad, 42, wrong_kind, dict(good)]}).encode()
    result = await store_decoded(fleet_db, "a-c1", decode_v1("b-1", body))
    assert not result.duplicate and result.stored == 1
    assert [(r.position, r.reading_id) for r in result.rejected] == [(1, "other"), (2, ""), (3, "k"), (4, good["id"])]
    reasons = [r.reason for r in result.rejected]
    assert reasons[0] == "reading #1 has taken_at without a time zone"
    assert reasons[1] == "reading #2 is not an object"
    assert reasons[2].startswith("reading #3 is malformed") and "toner" in reasons[2]
    assert reasons[3] == f"reading #4 repeats id {good['id']!r}"
    assert [r.id for r in await readings_for(fleet_db, device_id="dev-m130")] == [good["id"]]
    assert await count_readings(fleet_db) == 1


async def test_alert_is_raised_then_cleared_when_a_later_reading_no_longer_has_it(fleet_db: Database) -> None:
    with_alerts = reading_of("lab-jetdirect_m130nw-alerts", ip="127.0.20.15", at=T0)
    assert len(with_alerts.alerts) == 3
    assert await ingest_payload(fleet_db, "a-c1", "b-1", payload_of([with_alerts])) is True
    async with fleet_db.session() as s:
        opened = await open_alerts(s, "dev-m130")
        f = await fleet_device(s, D1, "dev-m130")
    # the printer's 3 prtAlertTable entries, and one alert per detected error state (door open, jammed)
    assert sorted(a.alert.code for a in opened) == sorted([*(a.code for a in with_alerts.alerts), "doorOpen", "jammed"])
    assert all(a.raised_at == T0 and a.cleared_at is None for a in opened)
    assert f is not None and f.open_alerts == 5
    assert with_alerts.status is not None
    assert f.error_state == with_alerts.status.errors and f.printer_status == with_alerts.status.status

    still = reading_of("lab-jetdirect_m130nw-alerts", ip="127.0.20.15", at=T0 + days(1))
    assert await ingest_payload(fleet_db, "a-c1", "b-2", payload_of([still])) is True
    async with fleet_db.session() as s:
        assert len(await open_alerts(s, "dev-m130")) == 5  # same alerts: not raised twice
        assert (await s.execute(select(func.count()).select_from(DeviceAlertRow))).scalar_one() == 5

    fixed = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0 + days(2))
    assert fixed.alerts == ()
    assert await ingest_payload(fleet_db, "a-c1", "b-3", payload_of([fixed])) is True
    async with fleet_db.session() as s:
        assert await open_alerts(s, "dev-m130") == []
        rows = (await s.scalars(select(DeviceAlertRow))).all()
        f = await fleet_device(s, D1, "dev-m130")
    assert {r.cleared_at for r in rows} == {T0 + days(2)}
    assert {r.last_seen_at for r in rows} == {T0 + days(1)}
    assert f is not None and f.open_alerts == 0


async def test_late_reading_does_not_overwrite_newer_state(fleet_db: Database) -> None:
    new = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0 + days(2))
    old = reading_of("lab-jetdirect_m130nw-alerts", ip="127.0.20.15", at=T0)  # replayed from the queue
    assert await ingest_payload(fleet_db, "a-c1", "b-new", payload_of([new])) is True
    assert await ingest_payload(fleet_db, "a-c1", "b-old", payload_of([old])) is True
    async with fleet_db.session() as s:
        assert await open_alerts(s, "dev-m130") == []  # the old alerts were already over
        f = await fleet_device(s, D1, "dev-m130")
    assert f is not None and f.last_reading_at == T0 + days(2)
    # both are kept in the history, oldest first
    assert [r.id for r in await readings_for(fleet_db, device_id="dev-m130")] == [old.id, new.id]


async def test_special_supply_values_are_kept_as_states_not_numbers(fleet_db: Database) -> None:
    r = reading_of("brother_hl5370dw", ip="127.0.20.11", at=T0)
    special = [s for s in r.supplies if s.state is not SupplyState.KNOWN]
    assert special, "the Brother recording reports a -3 (some remaining) level"
    assert await ingest_payload(fleet_db, "a-c2", "b-1", payload_of([r])) is True
    async with fleet_db.session() as s:
        current = {c.supply.index: c.supply for c in await current_supplies(s, "dev-brother")}
    for sup in special:
        assert current[sup.index].level is None and current[sup.index].state is sup.state


async def test_readings_filter_by_kind_and_time_window(fleet_db: Database) -> None:
    rs = [reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0 + days(i),
                     kinds=(ReadingKind.COUNTERS,) if i % 2 else (ReadingKind.SUPPLIES,)) for i in range(6)]
    assert await ingest_payload(fleet_db, "a-c1", "b-1", payload_of(rs)) is True
    window = await readings_for(fleet_db, device_id="dev-m130", since=T0 + days(1), until=T0 + days(4))
    assert [r.taken_at for r in window] == [T0 + days(i) for i in (1, 2, 3, 4)]
    counters = await readings_for(fleet_db, device_id="dev-m130", kind=ReadingKind.COUNTERS)
    assert [r.taken_at for r in counters] == [T0 + days(i) for i in (1, 3, 5)]


async def test_serial_mismatch_with_device_at_same_ip_maps_by_ip_only_without_serial(fleet_db: Database) -> None:
    r = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0, serial_known=False)
    assert await ingest_payload(fleet_db, "a-c1", "b-1", payload_of([r])) is True
    assert [x.id for x in await readings_for(fleet_db, device_id="dev-m130")] == [r.id]


async def test_alerts_opened_and_cleared_are_announced_in_the_outbox_with_their_row_id(fleet_db: Database) -> None:
    from printgate.store.models.outbox import OutboxEventRow

    with_alerts = reading_of("lab-jetdirect_m130nw-alerts", ip="127.0.20.15", at=T0)
    fixed = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0 + days(1))
    assert await ingest_payload(fleet_db, "a-c1", "b-1", payload_of([with_alerts])) is True
    assert await ingest_payload(fleet_db, "a-c1", "b-2", payload_of([fixed])) is True
    async with fleet_db.session() as s:
        events = (await s.scalars(select(OutboxEventRow).order_by(OutboxEventRow.seq))).all()
        ids = set((await s.scalars(select(DeviceAlertRow.id))).all())
    opened = [e for e in events if e.kind == "alert.opened"]
    cleared = [e for e in events if e.kind == "alert.cleared"]
    assert len(ids) == 5 and {e.payload["alert_id"] for e in opened} == ids == {e.payload["alert_id"] for e in cleared}
    assert all(e.dealer_id == "d1" and e.device_id == "dev-m130" for e in events)
    assert all(e.payload["cleared_at"] == (T0 + days(1)).isoformat() for e in cleared)


async def test_a_group_of_batches_is_stored_once_each_and_duplicates_in_it_are_answered_as_such(
    fleet_db: Database,
) -> None:
    from fleet.decode import DecodedBatch
    from fleet.ingest import store_group

    seen = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    assert await ingest_payload(fleet_db, "a-c1", "b-seen", payload_of([seen])) is True
    m130 = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0 + days(1))
    brother = reading_of("brother_hl5370dw", ip="127.0.20.11", at=T0 + days(1))
    results = await store_group(fleet_db, [
        ("a-c1", DecodedBatch("b-new", 2, [m130])), ("a-c1", DecodedBatch("b-seen", 2, [m130])),
        ("a-c2", DecodedBatch("b-new", 2, [brother])), ("a-c1", DecodedBatch("b-new", 2, [m130])),
    ])
    assert [(r.duplicate, r.stored) for r in results] == [(False, 1), (True, 0), (False, 1), (True, 0)]
    assert [r.id for r in await readings_for(fleet_db, device_id="dev-m130")] == [seen.id, m130.id]
    assert [r.id for r in await readings_for(fleet_db, device_id="dev-brother")] == [brother.id]


async def test_a_writer_drains_its_groups_on_one_connection_and_a_failed_group_hands_it_back(
    fleet_db: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL: the writer keeps one connection while it drains (not a pooled check-out, with
    its ping, per group); a group that fails gives it back, the next group takes a fresh one."""
    import asyncio

    from sqlalchemy import event

    import fleet.ingest
    from printgate.wire import convert

    if fleet_db.dialect != "postgresql":
        pytest.skip("the writer keeps a connection on PostgreSQL only")
    checkouts = 0

    def counted(*_: object) -> None:
        nonlocal checkouts
        checkouts += 1

    event.listen(fleet_db.engine.sync_engine.pool, "checkout", counted)
    real, calls = fleet.ingest.rows.upsert_states, 0

    async def third_fails(s: object, states: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("the third group breaks")
        await real(s, states)  # type: ignore[arg-type]

    monkeypatch.setattr(fleet.ingest.rows, "upsert_states", third_fails)
    ingest = fleet.ingest.FleetIngest(fleet_db, writers=1, group_readings=1)  # a group per batch
    batches = [convert.readings_batch("s-c1", f"b-{n}", [reading_of("jetdirect_m130nw", ip="127.0.20.15",
                                                                    at=T0 + days(n))]) for n in range(6)]
    got = await asyncio.gather(*(ingest.ingest("a-c1", b) for b in batches), return_exceptions=True)
    assert ingest.groups == 6
    assert [type(r).__name__ for r in got] == ["IngestResult"] * 2 + ["RuntimeError"] + ["IngestResult"] * 3
    assert checkouts == 2  # one for the drain, a fresh one after the failed group (not six)
    assert await count_readings(fleet_db) == 5

"""fleet.state on hand-made readings: newest part wins, alerts raised, kept and cleared in
time order within one batch, supply thresholds per device."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from fleet.state import alert_key, apply_batch, page_count_of
from printgate.domain import (
    CounterValue,
    PrinterAlert,
    PrinterStatus,
    Reading,
    ReadingKind,
    SupplyLevel,
)
from printgate.fleet_alerts import SupplyThresholds
from printgate.store.readings import DeviceState, TrackedAlert

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
JAM = PrinterAlert(1, "critical", "mediaPath", "jam", "Paper jam")
R = Reading(id="r", ip="10.0.0.5", taken_at=T0, kinds=tuple(ReadingKind),
            counters=(CounterValue("marker.1.1.life", 100), CounterValue("marker.2.1.life", 50)),
            supplies=(SupplyLevel(1, "Black", "toner", "black", "percent", 100, 40),),
            status=PrinterStatus("idle", (), "running"))


def at(minutes: int, **changes: object) -> Reading:
    return replace(R, id=f"r{minutes}", taken_at=T0 + timedelta(minutes=minutes), **changes)  # type: ignore[arg-type]


def test_page_count_is_the_sum_of_marker_life_counts_else_the_vendor_total() -> None:
    assert page_count_of(R) == 150
    assert page_count_of(replace(R, counters=(CounterValue("vendor.pages.total", 7),))) == 7
    assert page_count_of(replace(R, counters=())) is None


def test_a_late_reading_changes_no_newer_part_of_the_state() -> None:
    stored = DeviceState("d", last_reading_at=T0 + timedelta(hours=1), counters_at=T0 + timedelta(hours=1),
                         page_count=999, error_state=[])
    changes = apply_batch([("d", at(0))], {"d": stored}, [], {})
    [st] = changes.states
    assert st.page_count == 999 and st.last_reading_at == T0 + timedelta(hours=1)
    assert st.supplies_at == T0 and changes.supplies["d"] == (T0, R.supplies)  # supplies were never set


def test_an_alert_raised_and_cleared_within_one_batch_is_kept_as_it_happened() -> None:
    batch = [("d", at(10)), ("d", at(5, alerts=(JAM,)))]  # arrival order does not matter
    changes = apply_batch(batch, {}, [], {})
    [jam] = [a for a in changes.alerts if a.key == alert_key(JAM)]
    assert jam.id is None and jam.raised_at == T0 + timedelta(minutes=5) and jam.cleared_at == T0 + timedelta(minutes=10)


def test_an_open_alert_still_reported_is_kept_and_only_its_description_follows() -> None:
    open_jam = TrackedAlert("d", alert_key(JAM), JAM, T0, T0, id=7)
    later = replace(JAM, severity="warning", description="Paper jam in tray 2")
    changes = apply_batch([("d", at(5, alerts=(later,)))], {}, [open_jam], {})
    [row] = [a for a in changes.alerts if a.id == 7]
    assert row.cleared_at is None and row.last_seen_at == T0 + timedelta(minutes=5)
    assert row.alert.severity == "critical" and row.alert.description == "Paper jam in tray 2"


def test_supply_alerts_follow_each_devices_thresholds() -> None:
    low = at(0, supplies=(SupplyLevel(1, "Black", "toner", "black", "percent", 100, 20),))
    changes = apply_batch([("a", low), ("b", replace(low, id="rb"))], {}, [],
                          {"a": SupplyThresholds(25, 10)})  # b: the defaults (15/5)
    assert {a.device_id for a in changes.alerts} == {"a"}


def test_a_lifetime_counter_going_backwards_does_not_lower_the_page_count_and_is_reported() -> None:
    stored = DeviceState("d", last_reading_at=T0, counters_at=T0, page_count=150, error_state=[])
    lower = at(5, counters=(CounterValue("marker.1.1.life", 3),))
    changes = apply_batch([("d", lower)], {"d": stored}, [], {})
    assert changes.states[0].page_count == 150 and changes.states[0].counters_at == T0
    assert changes.states[0].last_reading_at == lower.taken_at  # the reading itself arrived
    assert changes.counters_backwards == [("d", "r5", 150, 3)]
    higher = apply_batch([("d", at(6, counters=(CounterValue("marker.1.1.life", 151),)))], {"d": stored}, [], {})
    assert higher.states[0].page_count == 151 and higher.counters_backwards == []

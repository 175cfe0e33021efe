"""The fleet rules: each device's current state as its readings arrive (pure, in memory).

- counters: the page count (sum of the markers' life counts) and its time; a newer reading
  with a LOWER page count (a board swap, a bogus agent) does not lower it: the reading stays in
  the history and is reported (``BatchChanges.counters_backwards``, logged by ingest); nor does
  an implausible one raise it (``BatchChanges.counters_implausible``): a count above
  ``MAX_PLAUSIBLE_PAGES`` (a Counter64 at its maximum), or a rise faster than
  ``MAX_PAGES_PER_SECOND`` since the current count was read. A current count above
  ``MAX_PLAUSIBLE_PAGES`` (stored before this rule) counts as unknown: the next plausible
  reading replaces it, so one bogus value cannot freeze a device's page count for good;
- supplies: the set of the newest supplies reading replaces the device's current supplies;
- alerts: an alert is raised when first reported and cleared when a newer reading of its
  kind no longer holds it: the printer's prtAlertTable entries and its detected error
  states with alerts readings (printer status comes with them), supplies at or below the
  tenant's thresholds with supplies readings (``printgate.fleet_alerts``).

A reading older than the part of the state it would change is ignored for that part
(store-and-forward can deliver late), so the order of arrival does not matter. Readings of
one batch are applied oldest first, so an alert raised and cleared within one batch is kept
in the history as it happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from printgate.domain import PrinterAlert, Reading, ReadingKind, SupplyLevel
from printgate.fleet_alerts import (
    STATE_SOURCE,
    SUPPLY_SOURCE,
    SupplyThresholds,
    error_state_alerts,
    supply_alerts,
)
from printgate.store.readings import DeviceState, TrackedAlert

MAX_PLAUSIBLE_PAGES = 10**10  # no printer prints ten billion pages in its life
MAX_PAGES_PER_SECOND = 1000  # ... nor a thousand pages a second (the fastest print ~ 5)


def implausible_rise(current: int | None, current_at: datetime | None, count: int, taken_at: datetime) -> bool:
    """A page count no printer could have reached from ``current`` (read at ``current_at``)."""
    if count > MAX_PLAUSIBLE_PAGES:
        return True
    if current is None or current_at is None or current > MAX_PLAUSIBLE_PAGES or count <= current:
        return False
    seconds = max(1.0, (taken_at - current_at).total_seconds())
    return count - current > MAX_PAGES_PER_SECOND * seconds


def page_count_of(r: Reading) -> int | None:
    """Sum of prtMarkerLifeCount over the markers; without them the vendor's total page
    counter (``vendor.pages.total``); None when neither was read."""
    life = [c.value for c in r.counters if c.name.startswith("marker.") and c.name.endswith(".life")]
    if life:
        return sum(life)
    total = [c.value for c in r.counters if c.name == "vendor.pages.total"]
    return total[0] if total else None


def alert_key(a: PrinterAlert) -> str:
    return f"{a.index}/{a.group}/{a.code}"[:200]


def _source_of(key: str) -> str | None:
    """Which rule owns an alert: the supply thresholds, the detected error states, or the printer (None)."""
    for source in (SUPPLY_SOURCE, STATE_SOURCE):
        if key.startswith(source):
            return source
    return None


def _newer(current: datetime | None, taken_at: datetime) -> bool:
    return current is None or taken_at >= current


@dataclass
class BatchChanges:
    """What a batch changes: the new states, supplies to replace and alert rows to write."""

    states: list[DeviceState] = field(default_factory=list)
    supplies: dict[str, tuple[datetime, Sequence[SupplyLevel]]] = field(default_factory=dict)
    alerts: list[TrackedAlert] = field(default_factory=list)
    # (device, reading id, current page count, the lower one read): kept in the history, not applied
    counters_backwards: list[tuple[str, str, int, int]] = field(default_factory=list)
    # (device, reading id, current page count or None, the implausible one read): history only
    counters_implausible: list[tuple[str, str, int | None, int]] = field(default_factory=list)


def apply_batch(
    readings: Iterable[tuple[str, Reading]], states: Mapping[str, DeviceState],
    open_alerts: Iterable[TrackedAlert], thresholds: Mapping[str, SupplyThresholds],
) -> BatchChanges:
    """Apply (device id, reading) pairs, oldest first, to the devices' states and open alerts."""
    by_device: dict[str, DeviceState] = {}
    alerts: dict[str, list[TrackedAlert]] = {}
    for a in open_alerts:
        alerts.setdefault(a.device_id, []).append(a)
    changes = BatchChanges()
    for device_id, r in sorted(readings, key=lambda p: p[1].taken_at):
        st = by_device.get(device_id)
        if st is None:
            st = states.get(device_id) or DeviceState(device_id, error_state=[])
            by_device[device_id] = st
        if _newer(st.last_reading_at, r.taken_at):
            st.last_reading_at = r.taken_at
        if ReadingKind.COUNTERS in r.kinds and _newer(st.counters_at, r.taken_at):
            count = page_count_of(r)
            current = st.page_count if st.page_count is None or st.page_count <= MAX_PLAUSIBLE_PAGES else None
            if count is not None and implausible_rise(current, st.counters_at, count, r.taken_at):
                changes.counters_implausible.append((device_id, r.id, st.page_count, count))
            elif count is not None and current is not None and count < current:
                changes.counters_backwards.append((device_id, r.id, current, count))
            elif count is not None:  # a lifetime counter never goes down: a lower one stays in the history only
                st.page_count, st.counters_at = count, r.taken_at
        device_alerts = alerts.setdefault(device_id, [])
        if ReadingKind.SUPPLIES in r.kinds and r.supplies and _newer(st.supplies_at, r.taken_at):
            st.supplies_at = r.taken_at
            changes.supplies[device_id] = (r.taken_at, r.supplies)
            limits = thresholds.get(device_id, SupplyThresholds())
            _track(device_id, device_alerts, r.taken_at, supply_alerts(r.supplies, limits), SUPPLY_SOURCE)
        if ReadingKind.ALERTS in r.kinds and _newer(st.alerts_at, r.taken_at):
            st.alerts_at = r.taken_at
            if r.status is not None:
                st.printer_status = (r.status.status or None) and r.status.status[:32]
                st.device_status = (r.status.device_status or None) and r.status.device_status[:32]
                st.error_state = list(r.status.errors)
            _track(device_id, device_alerts, r.taken_at, {alert_key(a): a for a in r.alerts}, None)
            errors = r.status.errors if r.status is not None else ()
            _track(device_id, device_alerts, r.taken_at, error_state_alerts(errors), STATE_SOURCE)
    changes.states = list(by_device.values())
    changes.alerts = [a for rows in alerts.values() for a in rows if a.id is None or a.changed]
    return changes


def _track(device_id: str, rows: list[TrackedAlert], taken_at: datetime, reported: dict[str, PrinterAlert],
           source: str | None) -> None:
    """Raise what is new, keep what still holds, clear what the reading no longer has (one source)."""
    by_key = {a.key: a for a in rows if a.cleared_at is None and _source_of(a.key) == source}
    for key, a in by_key.items():
        a.changed = True
        if key in reported:
            a.last_seen_at = max(a.last_seen_at, taken_at)
            a.alert = _with_description(a.alert, reported[key].description)
        else:
            a.cleared_at = taken_at
    for key, alert in reported.items():
        if key not in by_key:
            rows.append(TrackedAlert(device_id, key[:200], alert, taken_at, taken_at))


def _with_description(a: PrinterAlert, description: str) -> PrinterAlert:
    """Only the description of a stored alert follows the printer (e.g. the supply's level now)."""
    return PrinterAlert(a.index, a.severity, a.group, a.code, description, a.training_level)

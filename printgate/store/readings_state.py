"""Keeping each device's current state as its readings arrive.

- counters: the page count (sum of the markers' life counts) and its time;
- supplies: one row per supply, replaced by every newer supplies reading;
- alerts: an alert is raised when first reported and cleared when a newer
  reading of its kind no longer holds it: the printer's prtAlertTable entries
  and its detected error states with alerts readings (printer status comes
  with them), supplies at or below the tenant's thresholds with supplies
  readings (``printgate.fleet_alerts``).

A reading older than the part of the state it would change is ignored for
that part (store-and-forward can deliver late), so order of arrival does not
matter.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import PrinterAlert, Reading, ReadingKind
from printgate.fleet_alerts import (
    STATE_SOURCE,
    SUPPLY_SOURCE,
    SupplyThresholds,
    error_state_alerts,
    supply_alerts,
)
from printgate.store.models.core import CustomerRow, DeviceRow, SiteRow
from printgate.store.models.readings import (
    DeviceAlertRow,
    DeviceStateRow,
    DeviceSupplyRow,
    SupplyThresholdRow,
)


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


def _newer(current: datetime | None, taken_at: datetime) -> bool:
    return current is None or taken_at >= current


async def thresholds_of_tenant(s: AsyncSession, tenant_id: str) -> tuple[SupplyThresholds, bool]:
    """A dealer's supply thresholds and whether it set them (False: the defaults)."""
    row = await s.get(SupplyThresholdRow, tenant_id)
    if row is None:
        return SupplyThresholds(), False
    return SupplyThresholds(row.warning_percent, row.critical_percent), True


async def set_thresholds_of_tenant(
    s: AsyncSession, tenant_id: str, thresholds: SupplyThresholds, *, by: str, now: datetime
) -> None:
    row = await s.get(SupplyThresholdRow, tenant_id)
    if row is None:
        row = SupplyThresholdRow(tenant_id=tenant_id)
        s.add(row)
    row.warning_percent, row.critical_percent = thresholds.warning_percent, thresholds.critical_percent
    row.updated_at, row.updated_by = now, by[:320]
    await s.flush()


async def thresholds_of_device(s: AsyncSession, device_id: str) -> SupplyThresholds:
    """The supply thresholds of the dealer owning the device (the defaults when it set none)."""
    row = (await s.execute(
        select(SupplyThresholdRow)
        .join(CustomerRow, CustomerRow.dealer_id == SupplyThresholdRow.tenant_id)
        .join(SiteRow, SiteRow.customer_id == CustomerRow.id)
        .join(DeviceRow, DeviceRow.site_id == SiteRow.id)
        .where(DeviceRow.id == device_id)
    )).scalars().first()
    if row is None:
        return SupplyThresholds()
    return SupplyThresholds(row.warning_percent, row.critical_percent)


async def apply_reading(s: AsyncSession, device_id: str, r: Reading) -> None:
    state = await s.get(DeviceStateRow, device_id)
    if state is None:
        state = DeviceStateRow(device_id=device_id, error_state=[])
        s.add(state)
    if _newer(state.last_reading_at, r.taken_at):
        state.last_reading_at = r.taken_at
    if ReadingKind.COUNTERS in r.kinds and _newer(state.counters_at, r.taken_at):
        count = page_count_of(r)
        if count is not None:
            state.page_count = count
            state.counters_at = r.taken_at
    if ReadingKind.SUPPLIES in r.kinds and r.supplies and _newer(state.supplies_at, r.taken_at):
        state.supplies_at = r.taken_at
        await _replace_supplies(s, device_id, r)
        thresholds = await thresholds_of_device(s, device_id)
        await _track_alerts(s, device_id, r.taken_at, supply_alerts(r.supplies, thresholds), SUPPLY_SOURCE)
    if ReadingKind.ALERTS in r.kinds and _newer(state.alerts_at, r.taken_at):
        state.alerts_at = r.taken_at
        if r.status is not None:
            state.printer_status = (r.status.status or None) and r.status.status[:32]
            state.device_status = (r.status.device_status or None) and r.status.device_status[:32]
            state.error_state = list(r.status.errors)
        reported = {alert_key(a): a for a in r.alerts}
        await _track_alerts(s, device_id, r.taken_at, reported, None)
        states = r.status.errors if r.status is not None else ()
        await _track_alerts(s, device_id, r.taken_at, error_state_alerts(states), STATE_SOURCE)


async def _replace_supplies(s: AsyncSession, device_id: str, r: Reading) -> None:
    await s.execute(delete(DeviceSupplyRow).where(DeviceSupplyRow.device_id == device_id))
    for sup in {x.index: x for x in r.supplies}.values():
        s.add(DeviceSupplyRow(
            device_id=device_id, supply_index=sup.index, description=sup.description[:1024],
            type=sup.type[:64], colour=sup.colour[:64] if sup.colour else None, unit=sup.unit[:64],
            max_capacity=sup.max_capacity, level=sup.level, state=str(sup.state), percent=sup.percent,
            taken_at=r.taken_at,
        ))
    await s.flush()


def _source_of(key: str) -> str | None:
    """Which rule owns an alert: the supply thresholds, the detected error states, or the printer (None)."""
    for source in (SUPPLY_SOURCE, STATE_SOURCE):
        if key.startswith(source):
            return source
    return None


async def _track_alerts(
    s: AsyncSession, device_id: str, taken_at: datetime, reported: dict[str, PrinterAlert], source: str | None
) -> None:
    """Raise what is new, keep what still holds, clear what the reading no longer has (one source)."""
    open_rows = (await s.scalars(
        select(DeviceAlertRow).where(DeviceAlertRow.device_id == device_id, DeviceAlertRow.cleared_at.is_(None))
    )).all()
    by_key = {row.alert_key: row for row in open_rows if _source_of(row.alert_key) == source}
    for key, row in by_key.items():
        if key in reported:
            row.last_seen_at = max(row.last_seen_at, taken_at)
            row.description = reported[key].description[:1024]  # e.g. the supply's level now
        else:
            row.cleared_at = taken_at
    for key, a in reported.items():
        if key not in by_key:
            s.add(DeviceAlertRow(
                device_id=device_id, alert_key=key[:200], alert_index=a.index, severity=a.severity[:32],
                group=a.group[:64], code=a.code[:64], description=a.description[:1024],
                training_level=a.training_level[:64] if a.training_level else None,
                raised_at=taken_at, last_seen_at=taken_at,
            ))
    await s.flush()

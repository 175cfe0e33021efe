"""A dealer's supply alert thresholds: rows and SQL. The fleet rules that use them (current
state, supplies, alerts as readings arrive) are in ``fleet.state``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.fleet_alerts import SupplyThresholds
from printgate.store.models.core import CustomerRow, DeviceRow, SiteRow
from printgate.store.models.readings import SupplyThresholdRow


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

"""Fleet queries, always within one tenant: a dealer sees its customers'
devices, a customer only its own. A device outside the scope is "not found"."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, false, select
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import (
    CurrentSupply,
    CustomerId,
    DeviceAlert,
    DeviceId,
    FleetDevice,
    PrinterAlert,
    Reading,
    ReadingKind,
    SupplyLevel,
    SupplyState,
    User,
)
from printgate.fleet_alerts import consumables
from printgate.store.devices import device_from_row
from printgate.store.models.core import AgentRow, CustomerRow, DeviceRow, SiteRow
from printgate.store.models.readings import (
    DeviceAlertRow,
    DeviceStateRow,
    DeviceSupplyRow,
    ReadingRow,
)


@dataclass(frozen=True, slots=True)
class TenantScope:
    """Whose devices a user may see; empty (neither id) sees nothing."""

    dealer_id: str | None = None
    customer_id: str | None = None

    @classmethod
    def of(cls, user: User) -> TenantScope:
        if user.customer_id:
            return cls(customer_id=user.customer_id)
        return cls(dealer_id=user.dealer_id)

    def condition(self) -> ColumnElement[bool]:
        """The tenant condition for a query joining DeviceRow→SiteRow→CustomerRow."""
        if self.customer_id:
            return CustomerRow.id == self.customer_id
        if self.dealer_id:
            return CustomerRow.dealer_id == self.dealer_id
        return false()  # no tenant: nothing


def supply_from_row(row: DeviceSupplyRow) -> SupplyLevel:
    return SupplyLevel(row.supply_index, row.description, row.type, row.colour, row.unit,
                       row.max_capacity, row.level, SupplyState(row.state))


def lowest_supply(supplies: list[SupplyLevel]) -> SupplyLevel | None:
    """The consumable with the lowest known percentage; else one with a special state.

    Waste containers fill up: a low level there is not running out, so they are never picked.
    """
    usable = consumables(supplies)
    known = [s for s in usable if s.percent is not None]
    if known:
        return min(known, key=lambda s: (s.percent, s.index))
    return min(usable, key=lambda s: s.index) if usable else None


def _alert_from_row(row: DeviceAlertRow) -> DeviceAlert:
    return DeviceAlert(
        id=row.id, device_id=DeviceId(row.device_id),
        alert=PrinterAlert(row.alert_index, row.severity, row.group, row.code, row.description,
                           row.training_level),
        raised_at=row.raised_at, last_seen_at=row.last_seen_at, cleared_at=row.cleared_at,
    )


_SEVERITY_RANK = {"critical": 3, "warning": 2, "warningBinaryChangeEvent": 2, "other": 1}


async def fleet_devices(s: AsyncSession, scope: TenantScope, *, device_id: str | None = None) -> list[FleetDevice]:
    """The scope's devices (by customer, then name) with their current state."""
    q = (
        select(DeviceRow, CustomerRow.id, CustomerRow.name, SiteRow.name, AgentRow.online, DeviceStateRow)
        .join(SiteRow, SiteRow.id == DeviceRow.site_id)
        .join(CustomerRow, CustomerRow.id == SiteRow.customer_id)
        .join(AgentRow, AgentRow.id == DeviceRow.agent_id)
        .outerjoin(DeviceStateRow, DeviceStateRow.device_id == DeviceRow.id)
        .order_by(CustomerRow.name, DeviceRow.name, DeviceRow.id)
    )
    if device_id is not None:
        q = q.where(DeviceRow.id == device_id)
    rows = (await s.execute(q.where(scope.condition()))).all()
    if not rows:
        return []
    ids = [r[0].id for r in rows]
    alerts: dict[str, int] = defaultdict(int)
    worst: dict[str, tuple[tuple[int, float], tuple[str, str, str]]] = {}
    for dev, severity, code, description, raised in (await s.execute(
        select(DeviceAlertRow.device_id, DeviceAlertRow.severity, DeviceAlertRow.code,
               DeviceAlertRow.description, DeviceAlertRow.raised_at)
        .where(DeviceAlertRow.device_id.in_(ids), DeviceAlertRow.cleared_at.is_(None))
    )).tuples().all():
        alerts[dev] += 1
        rank = (_SEVERITY_RANK.get(severity, 0), raised.timestamp())
        if dev not in worst or rank > worst[dev][0]:
            worst[dev] = (rank, (severity, code, description))
    supplies: dict[str, list[SupplyLevel]] = defaultdict(list)
    for sup in (await s.scalars(select(DeviceSupplyRow).where(DeviceSupplyRow.device_id.in_(ids)))).all():
        supplies[sup.device_id].append(supply_from_row(sup))
    out = []
    for device, customer_id, customer, site, online, state in rows:
        out.append(FleetDevice(
            device=device_from_row(device), customer_id=CustomerId(customer_id), customer_name=customer,
            site_name=site, agent_online=bool(online),
            last_reading_at=state.last_reading_at if state else None,
            page_count=state.page_count if state else None,
            printer_status=state.printer_status if state else None,
            device_status=state.device_status if state else None,
            error_state=tuple(state.error_state or ()) if state else (),
            open_alerts=int(alerts.get(device.id, 0)),
            lowest_supply=lowest_supply(supplies.get(device.id, [])),
            worst_alert=worst[device.id][1] if device.id in worst else None,
        ))
    return out


@dataclass(frozen=True, slots=True)
class FleetSite:
    """A site of the tenant with its agent: where a "rescan now" goes."""

    agent_id: str
    site_name: str
    customer_id: str
    customer_name: str
    online: bool


async def fleet_sites(s: AsyncSession, scope: TenantScope, *, agent_id: str | None = None) -> list[FleetSite]:
    """The scope's sites that have an agent (not revoked), by customer then site."""
    q = (
        select(AgentRow.id, SiteRow.name, CustomerRow.id, CustomerRow.name, AgentRow.online)
        .join(SiteRow, SiteRow.id == AgentRow.site_id)
        .join(CustomerRow, CustomerRow.id == SiteRow.customer_id)
        .where(scope.condition(), AgentRow.revoked.is_(False))
        .order_by(CustomerRow.name, SiteRow.name, AgentRow.id)
    )
    if agent_id is not None:
        q = q.where(AgentRow.id == agent_id)
    return [FleetSite(a, site, cid, cname, bool(online)) for a, site, cid, cname, online in (await s.execute(q)).all()]


async def fleet_device(s: AsyncSession, scope: TenantScope, device_id: str) -> FleetDevice | None:
    """One device if it is in the scope, else None (callers answer 404)."""
    found = await fleet_devices(s, scope, device_id=device_id)
    return found[0] if found else None


async def current_supplies(s: AsyncSession, device_id: str) -> list[CurrentSupply]:
    rows = (await s.scalars(
        select(DeviceSupplyRow).where(DeviceSupplyRow.device_id == device_id).order_by(DeviceSupplyRow.supply_index)
    )).all()
    return [CurrentSupply(DeviceId(r.device_id), supply_from_row(r), r.taken_at) for r in rows]


async def open_alerts(s: AsyncSession, device_id: str) -> list[DeviceAlert]:
    """Open alerts, most severe-looking (critical first) then newest first."""
    rows = (await s.scalars(
        select(DeviceAlertRow)
        .where(DeviceAlertRow.device_id == device_id, DeviceAlertRow.cleared_at.is_(None))
        .order_by(DeviceAlertRow.raised_at.desc(), DeviceAlertRow.id)
    )).all()
    alerts = [_alert_from_row(r) for r in rows]
    return sorted(alerts, key=lambda a: a.alert.severity != "critical")


async def cleared_alerts(s: AsyncSession, device_id: str, *, since: datetime, limit: int = 50) -> list[DeviceAlert]:
    rows = (await s.scalars(
        select(DeviceAlertRow)
        .where(DeviceAlertRow.device_id == device_id, DeviceAlertRow.cleared_at >= since)
        .order_by(DeviceAlertRow.cleared_at.desc()).limit(limit)
    )).all()
    return [_alert_from_row(r) for r in rows]


async def device_readings(
    s: AsyncSession, device_id: str, *, kind: ReadingKind | None = None, since: datetime | None = None,
    until: datetime | None = None, limit: int = 500,
) -> list[Reading]:
    """The device's readings in [since, until], oldest first (the newest ``limit``)."""
    q = select(ReadingRow.body).where(ReadingRow.device_id == device_id)
    if kind is not None:
        q = q.where(ReadingRow.kinds.contains(str(kind)))
    if since is not None:
        q = q.where(ReadingRow.taken_at >= since)
    if until is not None:
        q = q.where(ReadingRow.taken_at <= until)
    bodies = (await s.scalars(q.order_by(ReadingRow.taken_at.desc()).limit(limit))).all()
    return [Reading.from_dict(b) for b in reversed(bodies)]

"""Fleet queries, always within one tenant: a dealer sees its customers'
devices, a customer only its own. A device outside the scope is "not found"."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, false, select
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import (
    AgentId,
    CurrentSupply,
    CustomerId,
    Device,
    DeviceAlert,
    DeviceId,
    DeviceIdentity,
    FleetDevice,
    PrinterAlert,
    Reading,
    ReadingKind,
    SiteId,
    SupplyLevel,
    SupplyState,
    User,
)
from printgate.fleet_alerts import consumables
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


_DEVICE_COLUMNS = (DeviceRow.id, DeviceRow.site_id, DeviceRow.agent_id, DeviceRow.ip, DeviceRow.name,
                   DeviceRow.ews_port, DeviceRow.ews_scheme, DeviceRow.ews_probe, DeviceRow.serial, DeviceRow.mac,
                   DeviceRow.model, DeviceRow.sys_object_id, DeviceRow.vendor, DeviceRow.sys_name,
                   DeviceRow.location, DeviceRow.tls_fingerprint, DeviceRow.labels, DeviceRow.blocked,
                   DeviceRow.identity_verified, DeviceRow.previous_model, DeviceRow.model_changed_at)


def _device_of(c: Sequence[Any]) -> Device:
    return Device(
        id=DeviceId(c[0]), site_id=SiteId(c[1]), agent_id=AgentId(c[2]), ip=c[3], name=c[4], ews_port=c[5],
        ews_scheme=c[6], ews_probe=c[7] or "",
        identity=DeviceIdentity(serial=c[8], mac=c[9], model=c[10], sys_object_id=c[11], vendor=c[12],
                                sys_name=c[13], location=c[14], tls_fingerprint=c[15]),
        labels=frozenset(c[16] or ()), blocked=c[17], identity_verified=c[18], previous_model=c[19],
        model_changed_at=c[20],
    )


async def fleet_devices(s: AsyncSession, scope: TenantScope, *, device_id: str | None = None) -> list[FleetDevice]:
    """The scope's devices (by customer, then name) with their current state.

    Core rows, not ORM entities (the overview of a dealer's 20,000 printers is one page): one
    query for the devices with their state, one for the open alerts and one for the supplies,
    the last two restricted by the same tenant condition instead of a list of ids."""
    st = DeviceStateRow.__table__.c
    in_scope = (select(DeviceRow.id).join(SiteRow, SiteRow.id == DeviceRow.site_id)
                .join(CustomerRow, CustomerRow.id == SiteRow.customer_id).where(scope.condition()))
    if device_id is not None:
        in_scope = in_scope.where(DeviceRow.id == device_id)
    q = (
        select(*_DEVICE_COLUMNS, CustomerRow.id, CustomerRow.name, SiteRow.name, AgentRow.online,
               st.last_reading_at, st.page_count, st.printer_status, st.device_status, st.error_state)
        .join(SiteRow, SiteRow.id == DeviceRow.site_id)
        .join(CustomerRow, CustomerRow.id == SiteRow.customer_id)
        .join(AgentRow, AgentRow.id == DeviceRow.agent_id)
        .outerjoin(DeviceStateRow, st.device_id == DeviceRow.id)
        .where(scope.condition())
        .order_by(CustomerRow.name, DeviceRow.name, DeviceRow.id)
    )
    if device_id is not None:
        q = q.where(DeviceRow.id == device_id)
    conn = await s.connection()  # Core results: no ORM row processing for 20,000 plain rows
    rows: Sequence[Any] = (await conn.execute(q)).all()
    if not rows:
        return []
    alerts: dict[str, int] = defaultdict(int)
    worst: dict[str, tuple[tuple[int, float], tuple[str, str, str]]] = {}
    for dev, severity, code, description, raised in (await conn.execute(
        select(DeviceAlertRow.device_id, DeviceAlertRow.severity, DeviceAlertRow.code,
               DeviceAlertRow.description, DeviceAlertRow.raised_at)
        .where(DeviceAlertRow.device_id.in_(in_scope), DeviceAlertRow.cleared_at.is_(None))
    )).tuples().all():
        alerts[dev] += 1
        rank = (_SEVERITY_RANK.get(severity, 0), raised.timestamp())
        if dev not in worst or rank > worst[dev][0]:
            worst[dev] = (rank, (severity, code, description))
    sp = DeviceSupplyRow.__table__.c
    supplies: dict[str, list[SupplyLevel]] = defaultdict(list)
    for d, i, desc, typ, colour, unit, cap, level, state in (await conn.execute(
        select(sp.device_id, sp.supply_index, sp.description, sp.type, sp.colour, sp.unit, sp.max_capacity,
               sp.level, sp.state).where(sp.device_id.in_(in_scope))
    )).tuples().all():
        supplies[d].append(SupplyLevel(i, desc, typ, colour, unit, cap, level, SupplyState(state)))
    n = len(_DEVICE_COLUMNS)
    out = []
    for r in rows:
        did = r[0]
        customer_id, customer, site, online, last_at, pages, printer_status, device_status, errors = r[n:]
        out.append(FleetDevice(
            device=_device_of(r), customer_id=CustomerId(customer_id), customer_name=customer,
            site_name=site, agent_online=bool(online), last_reading_at=last_at, page_count=pages,
            printer_status=printer_status, device_status=device_status, error_state=tuple(errors or ()),
            open_alerts=int(alerts.get(did, 0)), lowest_supply=lowest_supply(supplies.get(did, [])),
            worst_alert=worst[did][1] if did in worst else None,
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

"""Fleet queries, always within one tenant: a dealer sees its customers'
devices, a customer only its own. A device outside the scope is "not found"."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, false, func, literal, literal_column, select, union
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


async def fleet_devices(s: AsyncSession, scope: TenantScope, *, device_id: str | None = None,
                        device_ids: Sequence[str] | None = None) -> list[FleetDevice]:
    """The scope's devices (by customer, then name) with their current state.

    Core rows, not ORM entities (the overview of a dealer's 20,000 printers is one page): one
    query for the devices with their state, one for the open alerts and one for the supplies,
    the last two restricted by the same tenant condition instead of a list of ids."""
    st = DeviceStateRow.__table__.c
    in_scope = (select(DeviceRow.id).join(SiteRow, SiteRow.id == DeviceRow.site_id)
                .join(CustomerRow, CustomerRow.id == SiteRow.customer_id).where(scope.condition()))
    if device_id is not None:
        in_scope = in_scope.where(DeviceRow.id == device_id)
    if device_ids is not None:  # one page of the overview: only these
        in_scope = in_scope.where(DeviceRow.id.in_(list(device_ids)))
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
    if device_ids is not None:
        q = q.where(DeviceRow.id.in_(list(device_ids)))
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


# --- The overview of a large fleet: counts by SQL aggregates, one sorted, filtered page of devices ---

PROBLEMS = ("critical", "attention", "alerts", "low_supply", "offline", "no_reading")
"""Filters of the overview, each one a count on the page: ``critical`` (a critical open alert
or hrDeviceStatus down), ``attention`` (that or any open alert / hrDeviceStatus warning or
testing), ``alerts`` (any open alert), ``low_supply`` (a consumable at or below the warning
threshold; waste containers never), ``offline`` (the site's agent), ``no_reading`` (never
reported)."""
SORTS = ("attention", "name")


@dataclass(frozen=True, slots=True)
class FleetFilter:
    """What one overview page shows: a problem (one of ``PROBLEMS``), a customer, a text."""

    problem: str | None = None
    customer_id: str | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class FleetCounts:
    """The scope's devices counted per problem (SQL aggregates, no device loaded)."""

    devices: int
    critical: int
    attention: int
    alerts: int
    low_supply: int
    offline: int
    no_reading: int


@dataclass(frozen=True, slots=True)
class FleetPage:
    devices: list[FleetDevice]
    total: int  # devices matching the filter (all pages)
    offset: int
    limit: int


# What the text search looks in on a device, one expression: on PostgreSQL a trigram index
# (pg_trgm, migration 0023: ix_devices_search_trgm) is on exactly this, so the words must match it.
SEARCH_INDEX = "ix_devices_search_trgm"
DEVICE_SEARCH_TEXT = ("lower(coalesce(devices.name, '') || ' ' || devices.ip || ' ' || coalesce(devices.model, '') "
                      "|| ' ' || coalesce(devices.serial, ''))")


def _text_match(text: str) -> ColumnElement[bool]:
    """A device matches ``text`` (case-insensitive substring) in its name, address, model or
    serial, or in its site's or customer's name: ``id IN`` the union of the three, so a search
    starts from what matches (the devices' part through the trigram index on PostgreSQL; sites
    and customers are few) instead of testing every device of the scope."""
    pattern = _like(text)
    by_device = select(DeviceRow.id).where(literal_column(DEVICE_SEARCH_TEXT).like(pattern, escape="\\"))
    by_site = (select(DeviceRow.id).join(SiteRow, SiteRow.id == DeviceRow.site_id)
               .where(func.lower(SiteRow.name).like(pattern, escape="\\")))
    by_customer = (select(DeviceRow.id).join(SiteRow, SiteRow.id == DeviceRow.site_id)
                   .join(CustomerRow, CustomerRow.id == SiteRow.customer_id)
                   .where(func.lower(CustomerRow.name).like(pattern, escape="\\")))
    return DeviceRow.id.in_(union(by_device, by_site, by_customer).subquery().select().correlate(None))


def _overview_query(scope: TenantScope, warning_percent: float, where: FleetFilter) -> Any:
    """The scope's devices matching ``where`` (customer, text; not the problem), one row each
    with its problem flags and attention rank, as a subquery.

    Open alerts and the lowest consumable come from ``device_states`` (``open_alerts``,
    ``alert_severity``, ``lowest_percent``: kept by triggers as alerts and supplies change,
    migration 0023), so no page view groups the alerts and supplies of 20,000 devices; the
    dealer's warning threshold is applied here."""
    matches: list[ColumnElement[bool]] = [scope.condition()]
    if where.customer_id:
        matches.append(CustomerRow.id == where.customer_id)
    if where.text.strip():
        matches.append(_text_match(where.text.strip()))
    st = DeviceStateRow.__table__.c
    device_rank = case((st.device_status == "down", 3), (st.device_status.in_(("warning", "testing")), 2), else_=0)
    q = (
        select(DeviceRow.id.label("id"), CustomerRow.name.label("customer"), DeviceRow.name.label("name"),
               func.coalesce(st.open_alerts, 0).label("n_alerts"), func.coalesce(st.alert_severity, 0).label("severity"),
               device_rank.label("device_rank"),
               case((st.lowest_percent <= warning_percent, 1), else_=0).label("low"),
               case((AgentRow.online.is_(False), 1), else_=0).label("offline"),
               case((st.last_reading_at.is_(None), 1), else_=0).label("no_reading"))
        .join(SiteRow, SiteRow.id == DeviceRow.site_id)
        .join(CustomerRow, CustomerRow.id == SiteRow.customer_id)
        .join(AgentRow, AgentRow.id == DeviceRow.agent_id)
        .outerjoin(DeviceStateRow, st.device_id == DeviceRow.id)
        .where(*matches)
    )
    return q.subquery("fleet_overview")


def _flags(o: Any) -> dict[str, ColumnElement[Any]]:
    rank = case((o.c.severity >= o.c.device_rank, o.c.severity), else_=o.c.device_rank)
    return {"rank": rank, "critical": rank >= 3, "attention": rank >= 2, "alerts": o.c.n_alerts > 0,
            "low_supply": o.c.low == 1, "offline": o.c.offline == 1, "no_reading": o.c.no_reading == 1}


def _like(text: str) -> str:
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def fleet_counts(s: AsyncSession, scope: TenantScope, *, warning_percent: float) -> FleetCounts:
    """How many of the scope's devices have each problem: one aggregate query."""
    o = _overview_query(scope, warning_percent, FleetFilter())
    f = _flags(o)
    q = select(func.count(), *(func.coalesce(func.sum(case((f[k], 1), else_=0)), 0) for k in PROBLEMS)).select_from(o)
    row = (await (await s.connection()).execute(q)).one()
    return FleetCounts(*(int(v) for v in row))


def _check(where: FleetFilter, sort: str) -> None:
    if where.problem is not None and where.problem not in PROBLEMS:
        raise ValueError(f"unknown problem {where.problem!r}: one of {', '.join(PROBLEMS)}")
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}: one of {', '.join(SORTS)}")


def _order(o: Any, f: dict[str, ColumnElement[Any]], sort: str, dialect: str) -> tuple[Any, ...]:
    # names in byte order on both databases: SQLite's BINARY, PostgreSQL's "C" (the same order
    # everywhere, and a sort of 20,000 rows by name is cheapest so)
    by_name = tuple(c.collate("C") if dialect == "postgresql" else c for c in (o.c.customer, o.c.name, o.c.id))
    return by_name if sort == "name" else (f["rank"].desc(), o.c.offline.desc(), o.c.n_alerts.desc(), *by_name)


async def _page_of(s: AsyncSession, scope: TenantScope, ids: list[str], total: int, offset: int,
                   limit: int) -> FleetPage:
    found: dict[str, FleetDevice] = {d.device.id: d for d in await fleet_devices(s, scope, device_ids=ids)} if ids else {}
    return FleetPage([found[i] for i in ids if i in found], total, offset, limit)


async def fleet_counts_and_page(
    s: AsyncSession, scope: TenantScope, *, warning_percent: float, where: FleetFilter = FleetFilter(),
    sort: str = "attention", offset: int = 0, limit: int = 50,
) -> tuple[FleetCounts, FleetPage]:
    """The counts of the whole scope and one page matching ``where``.

    Without a text or customer filter: one pass over the scope's devices, the counts as window
    aggregates over every row and the devices with the problem asked for sorted first, so the
    page is the first ``limit`` after ``offset`` of them (rows of a short last page that do not
    match are dropped here). With one: the counts (one aggregate) and the page starting from
    what matches (few rows)."""
    _check(where, sort)
    if where.text.strip() or where.customer_id:
        counts = await fleet_counts(s, scope, warning_percent=warning_percent)
        return counts, await fleet_page(s, scope, warning_percent=warning_percent, where=where, sort=sort,
                                        offset=offset, limit=limit)
    o = _overview_query(scope, warning_percent, FleetFilter())
    f = _flags(o)
    match = literal(1) if where.problem is None else case((f[where.problem], 1), else_=0)
    over = [func.count().over(), *(func.sum(case((f[k], 1), else_=0)).over() for k in PROBLEMS)]
    conn = await s.connection()
    order = _order(o, f, sort, conn.dialect.name)
    q = (select(o.c.id, match, *over).select_from(o)
         .order_by(*((match.desc(), *order) if where.problem else order)).offset(offset).limit(limit))
    rows = (await conn.execute(q)).all()
    counts = FleetCounts(*(int(v or 0) for v in rows[0][2:])) if rows else await fleet_counts(
        s, scope, warning_percent=warning_percent)
    total = counts.devices if where.problem is None else int(getattr(counts, where.problem))
    return counts, await _page_of(s, scope, [r[0] for r in rows if r[1]], total, offset, limit)


async def fleet_page(
    s: AsyncSession, scope: TenantScope, *, warning_percent: float, where: FleetFilter = FleetFilter(),
    sort: str = "attention", offset: int = 0, limit: int = 50, total: int | None = None,
) -> FleetPage:
    """One page of the scope's devices matching ``where`` (what the JSON API lists).

    ``sort="attention"``: the worst first (critical, then needing attention; within a rank an
    offline agent first, then the most open alerts), then by customer, name and id; ``"name"``:
    by customer, name and id. One query: the page's ids and the number matching (a window count;
    ``total`` when the caller knows it); only the page's devices are loaded."""
    _check(where, sort)
    o = _overview_query(scope, warning_percent, where)
    f = _flags(o)
    q = select(o.c.id, func.count().over() if total is None else literal(total)).select_from(o)
    if where.problem is not None:
        q = q.where(f[where.problem])
    conn = await s.connection()
    rows = (await conn.execute(q.order_by(*_order(o, f, sort, conn.dialect.name)).offset(offset).limit(limit))).all()
    if rows:
        total = int(rows[0][1])
    elif total is None:  # past the last page: the count alone
        total = int((await conn.execute(select(func.count()).select_from(q.subquery()))).scalar_one())
    return await _page_of(s, scope, [r[0] for r in rows], total, offset, limit)

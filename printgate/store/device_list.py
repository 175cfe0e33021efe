"""The technician's device list (``/devices``, ``GET /api/devices``) in SQL, for one dealer.

Search, filters, the grouping order, the counts and the paging are queries, so a page view costs
the same for 50 or 20,000 devices: the page's ids (one ordered, filtered query with the number
matching as a window count), then only those devices loaded with their state
(``fleet_devices(device_ids=...)``); the customer and site choices are small aggregate queries.

What the list selects is defined by ``portal.device_list`` (``DeviceFilter.matches``,
``device_groups``: the pure reference the tests hold these queries to); the status level is
``portal.fleet.status.status_of``'s, as a ``CASE`` over the same state columns
(``tests/portal/test_device_list_sql.py`` checks every combination against it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, exists, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import Device, FleetDevice
from printgate.fleet_alerts import ERROR_STATES
from printgate.store.devices import device_from_row
from printgate.store.fleet import TenantScope, fleet_devices
from printgate.store.models.core import AgentRow, CustomerRow, DeviceRow, SiteRow
from printgate.store.models.readings import DeviceStateRow

Grouping = Literal["customer", "site", "none"]
LEVELS = ("ok", "warning", "error", "unknown")
ALERTS = ("open", "none")


@dataclass(frozen=True, slots=True)
class DeviceListWhere:
    """What one page of the list selects: every word of ``words`` somewhere in the device's
    display name, model, serial, address, customer or site name (case-insensitive substrings);
    a customer, a site, a status level (``LEVELS``), with or without open alerts; and the order
    ``group`` implies (customer, then name; customer, site, then name; or by name)."""

    words: tuple[str, ...] = ()
    customer_id: str = ""
    site_id: str = ""
    status: str = ""
    alert: str = ""
    group: Grouping = "customer"

    @property
    def active(self) -> bool:
        return bool(self.words or self.customer_id or self.site_id or self.status or self.alert)


@dataclass(frozen=True, slots=True)
class DeviceListPage:
    devices: list[FleetDevice]  # in the list's order
    matching: int  # devices the filters select (all pages)
    total: int  # devices of the dealer
    offset: int = 0  # where the page starts (past the end: the last page's start)


@dataclass(frozen=True, slots=True)
class DeviceChoices:
    customers: list[tuple[str, str]]  # (customer id, name) of the customers with devices
    sites: list[tuple[str, str, str]]  # (site id, customer name, site name) of the sites with devices


_CRITICAL = sorted(k for k, (sev, _) in ERROR_STATES.items() if sev == "critical")
# hrPrinterDetectedErrorState: any state (a warning unless ERROR_STATES says critical), a critical
# one. ``error_state`` is a JSON array of strings as json.dumps writes it, so the text is searched
# instead of parsed (parsing the JSON of 20,000 rows cost more than the rest of the query): a
# critical state with its quotes, ``"noPaper"``, occurs in the text only as that element (a quote
# within a string is escaped, and between strings comes a comma); the array has an element when
# the text has a quote at all. SQL NULL (no state row) is neither.
_ERRORS = {
    dialect: (f"({fn}({text}, '\"') > 0)",
              "(" + " OR ".join(f"{fn}({text}, '\"{k}\"') > 0" for k in _CRITICAL) + ")")
    for dialect, fn, text in (("postgresql", "strpos", "device_states.error_state::text"),
                              ("sqlite", "instr", "device_states.error_state"))
}
_ACTIVITY = ("idle", "printing", "warmup")  # hrPrinterStatus words status_of says (others: nothing)


def status_level(dialect: str) -> ColumnElement[str]:
    """``status_of(f).level`` of the row's device, in SQL (joins: devices, agents, device_states).

    The agent offline: unknown; nothing reported: unknown; a critical open alert or error state:
    error; hrDeviceStatus down: error, warning/testing: warning; any error state or open alert:
    warning; running: ok; no known hrDeviceStatus but the printer idle, printing or warming up:
    ok; else unknown."""
    st = DeviceStateRow.__table__.c
    any_sql, critical_sql = _ERRORS["postgresql" if dialect == "postgresql" else "sqlite"]
    any_error: ColumnElement[bool] = literal_column(any_sql)
    critical_error: ColumnElement[bool] = literal_column(critical_sql)
    return case(
        (AgentRow.online.is_not(True), "unknown"),
        (and_(st.last_reading_at.is_(None), st.device_status.is_(None), st.printer_status.is_(None)), "unknown"),
        (or_(st.alert_severity >= 3, st.device_status == "down"), "error"),
        (critical_error, "error"),
        (or_(st.device_status.in_(("warning", "testing")), st.alert_severity >= 2), "warning"),
        (any_error, "warning"),
        (st.device_status == "running", "ok"),
        (st.printer_status.in_(_ACTIVITY), "ok"),
        else_="unknown",
    )


def display_name() -> ColumnElement[str]:
    """The name the list shows: the device's name, else serial, MAC, model (``Device.identity.describe``)."""
    return case((func.coalesce(DeviceRow.name, "") != "", DeviceRow.name),
                else_=func.coalesce(func.nullif(DeviceRow.serial, ""), func.nullif(DeviceRow.mac, ""),
                                    func.nullif(DeviceRow.model, ""), "unknown device"))


def _like(word: str) -> str:
    return "%" + word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _word_match(word: str) -> ColumnElement[bool]:
    p = _like(word)
    fields = (display_name(), DeviceRow.model, DeviceRow.serial, DeviceRow.ip, CustomerRow.name, SiteRow.name)
    return or_(*(func.lower(f).like(p, escape="\\") for f in fields))


def _scope(dealer_id: str) -> ColumnElement[bool]:
    return TenantScope(dealer_id=dealer_id).condition()


def _ordered(dialect: str, group: Grouping) -> tuple[Any, ...]:
    # within a group by the shown name, case-insensitively, in code point order on both databases
    # (PostgreSQL "C", SQLite BINARY: what Python's sort of str.lower() does), ties by name and id
    lowered = func.lower(display_name())
    shown: ColumnElement[str] = lowered.collate("C") if dialect == "postgresql" else lowered
    tail = (shown, DeviceRow.name, DeviceRow.id)
    if group == "site":
        return (CustomerRow.name, SiteRow.name, *tail)
    if group == "none":
        return (shown, CustomerRow.name, DeviceRow.name, DeviceRow.id)
    return (CustomerRow.name, *tail)


async def _dealer_device_count(s: AsyncSession, dealer_id: str) -> int:
    q = (select(func.count()).select_from(DeviceRow).join(SiteRow, SiteRow.id == DeviceRow.site_id)
         .join(CustomerRow, CustomerRow.id == SiteRow.customer_id).where(_scope(dealer_id)))
    return int((await (await s.connection()).execute(q)).scalar_one())


async def device_list_page(s: AsyncSession, dealer_id: str, where: DeviceListWhere, *, offset: int,
                           limit: int) -> DeviceListPage:
    """Devices ``offset .. offset+limit`` of the dealer's list as ``where`` selects and orders it;
    past the end: the last page (its ``offset`` says where it starts)."""
    conn = await s.connection()
    dialect = conn.dialect.name
    st = DeviceStateRow.__table__.c
    conds: list[ColumnElement[bool]] = [_word_match(w) for w in where.words if w]
    if where.customer_id:
        conds.append(CustomerRow.id == where.customer_id)
    if where.site_id:
        conds.append(DeviceRow.site_id == where.site_id)
    if where.status:
        conds.append(status_level(dialect) == where.status)
    if where.alert == "open":
        conds.append(func.coalesce(st.open_alerts, 0) > 0)
    elif where.alert == "none":
        conds.append(func.coalesce(st.open_alerts, 0) == 0)
    joined = (DeviceRow.__table__.join(SiteRow.__table__, SiteRow.id == DeviceRow.site_id)
              .join(CustomerRow.__table__, CustomerRow.id == SiteRow.customer_id))
    if where.status:
        joined = joined.join(AgentRow.__table__, AgentRow.id == DeviceRow.agent_id)
    if where.status or where.alert:
        joined = joined.outerjoin(DeviceStateRow.__table__, st.device_id == DeviceRow.id)
    # Without a filter: the page alone (a top-N sort for the first pages; a window count would
    # sort every row) and one count. With one: the page with the number matching as a window
    # count (the filter evaluated once: the status level and the search cost most per row) and
    # the dealer's devices counted alone.
    count = select(func.count()).select_from(joined).where(_scope(dealer_id))
    page = (select(DeviceRow.id, *([func.count().over()] if conds else [])).select_from(joined)
            .where(_scope(dealer_id), *conds).order_by(*_ordered(dialect, where.group)).offset(offset).limit(limit))
    rows = (await conn.execute(page)).all()
    total = int((await conn.execute(count)).scalar_one())
    if not conds:
        matching = total
    elif rows:
        matching = int(rows[0][1])
    else:  # past the last page (or nothing matches): the count alone
        matching = int((await conn.execute(count.where(*conds))).scalar_one())
    if not rows and offset > 0 and matching > 0:  # past the end: the last page
        offset = (matching - 1) // limit * limit
        rows = (await conn.execute(page.offset(offset))).all()
    ids = [r[0] for r in rows]
    loaded: dict[str, FleetDevice] = {f.device.id: f for f in await fleet_devices(s, TenantScope(dealer_id=dealer_id), device_ids=ids)} \
        if ids else {}
    return DeviceListPage([loaded[i] for i in ids if i in loaded], matching, total, offset)


async def device_choices(s: AsyncSession, dealer_id: str) -> DeviceChoices:
    """The dealer's customers and sites that have devices (what the filter's lists offer)."""
    conn = await s.connection()
    has_device = exists().where(DeviceRow.site_id == SiteRow.id)
    customers = (await conn.execute(
        select(CustomerRow.id, CustomerRow.name).where(
            _scope(dealer_id), exists().where(SiteRow.customer_id == CustomerRow.id, has_device)))).tuples().all()
    sites = (await conn.execute(
        select(SiteRow.id, CustomerRow.name, SiteRow.name).join(CustomerRow, CustomerRow.id == SiteRow.customer_id)
        .where(_scope(dealer_id), has_device))).tuples().all()
    return DeviceChoices([(c, n) for c, n in customers], [(i, c, n) for i, c, n in sites])


async def dealer_devices_page(s: AsyncSession, dealer_id: str, *, offset: int,
                              limit: int) -> tuple[list[tuple[Device, str]], int]:
    """One page of the dealer's devices with the customer's name, by customer name, device name
    and id (``GET /api/devices``), and how many the dealer has."""
    q = (select(DeviceRow, CustomerRow.name, func.count().over())
         .join(SiteRow, SiteRow.id == DeviceRow.site_id)
         .join(CustomerRow, CustomerRow.id == SiteRow.customer_id)
         .where(_scope(dealer_id))
         .order_by(CustomerRow.name, DeviceRow.name, DeviceRow.id).offset(offset).limit(limit))
    rows: Sequence[Any] = (await s.execute(q)).all()
    total = int(rows[0][2]) if rows else await _dealer_device_count(s, dealer_id)
    return [(device_from_row(r), name) for r, name, _ in rows], total

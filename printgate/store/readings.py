"""Readings rows and their SQL: the batch ledger (the one idempotency record), the history
table, current device state, supplies and alerts. No fleet rules live here: ``fleet.ingest``
decides what to write, these functions write it set-based (one statement per table and batch:
``COPY`` on PostgreSQL, multi-row ``INSERT`` on SQLite, ``INSERT ... ON CONFLICT`` upserts).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    String,
    Table,
    and_,
    any_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import PrinterAlert, Reading, ReadingKind, SupplyLevel
from printgate.fleet_alerts import SupplyThresholds
from printgate.store.db import Database
from printgate.store.models.core import AgentRow, CustomerRow, DeviceRow, SiteRow
from printgate.store.models.readings import (
    DeviceAlertRow,
    DeviceStateRow,
    DeviceSupplyRow,
    ReadingBatchRow,
    ReadingRow,
    SupplyThresholdRow,
)

_READINGS = cast(Table, ReadingRow.__table__)
_BATCHES = cast(Table, ReadingBatchRow.__table__)
_STATES = cast(Table, DeviceStateRow.__table__)
_SUPPLIES = cast(Table, DeviceSupplyRow.__table__)
_ALERTS = cast(Table, DeviceAlertRow.__table__)


def _length(table: Table, column: str) -> int:
    length = getattr(table.c[column].type, "length", None)
    assert isinstance(length, int), f"{table.name}.{column} has no length"
    return length


# The column limits a reading's values must fit (derived from the models, so they cannot drift):
# ``fleet.decode`` checks every field against them at the edge, so one bad value refuses its
# reading with a reason instead of failing the whole batch's transaction in the database.
COLUMN_LIMITS: dict[str, int] = {
    "id": _length(_READINGS, "id"), "ip": _length(_READINGS, "ip"), "serial": _length(_READINGS, "serial"),
    "kinds": _length(_READINGS, "kinds"),
    "supply.description": _length(_SUPPLIES, "description"), "supply.type": _length(_SUPPLIES, "type"),
    "supply.colour": _length(_SUPPLIES, "colour"), "supply.unit": _length(_SUPPLIES, "unit"),
    "alert.severity": _length(_ALERTS, "severity"), "alert.group": _length(_ALERTS, "group"),
    "alert.code": _length(_ALERTS, "code"), "alert.description": _length(_ALERTS, "description"),
    "alert.training_level": _length(_ALERTS, "training_level"),
    "status.status": _length(_STATES, "printer_status"), "status.device_status": _length(_STATES, "device_status"),
}
INTEGER_MAX = 2**31 - 1  # Integer columns: supply and alert indexes, levels, capacities
BIGINT_MAX = 2**63 - 1  # page_count


def _dialect(s: AsyncSession) -> str:
    return s.get_bind().dialect.name


def _among(s: AsyncSession, col: Any, values: Iterable[str]) -> Any:
    """``col IN values``: on PostgreSQL one array parameter (``= ANY($1)``: one statement text
    whatever the count, nothing rendered per value), elsewhere an expanding ``IN``."""
    wanted = sorted(set(values))
    if _dialect(s) == "postgresql":
        return col == any_(bindparam(None, wanted, type_=postgresql.ARRAY(String)))
    return col.in_(wanted)


async def _driver(s: AsyncSession) -> Any:
    """asyncpg's connection under the session (the same transaction): for ``COPY`` and the
    set-based statements over arrays (``unnest``), which SQLAlchemy's executemany would send
    row by row with per-row parameter processing."""
    conn = await s.connection()
    raw: Any = (await conn.get_raw_connection()).driver_connection
    if not raw.is_in_transaction():  # SQLAlchemy begins on its first statement: never autocommit ours
        await s.execute(select(1))
    return raw


def _upsert(s: AsyncSession, table: Any) -> Any:
    return (postgresql.insert(table) if _dialect(s) == "postgresql" else sqlite.insert(table))


async def claim_batches(s: AsyncSession, batches: Sequence[tuple[str, str, int]], *,
                        received_at: datetime, hashes: Mapping[tuple[str, str], str | None] | None = None,
                        ) -> set[tuple[str, str]]:
    """Record (agent id, batch id, readings) in the ledger, one statement; returns the ones recorded
    now. The others were delivered before (the one idempotency mechanism); a concurrent upload of
    the same batch waits on the key and then finds it recorded. ``hashes``: each batch's content hash."""
    if not batches:
        return set()
    hashes = hashes or {}
    if _dialect(s) == "postgresql":
        rows = await (await _driver(s)).fetch(
            "INSERT INTO reading_batches (agent_id, batch_id, received_at, count, content_hash) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::text[]) "
            "ON CONFLICT DO NOTHING RETURNING agent_id, batch_id",
            [a for a, _, _ in batches], [b for _, b, _ in batches], [received_at] * len(batches),
            [n for _, _, n in batches], [hashes.get((a, b)) for a, b, _ in batches])
        return {(r[0], r[1]) for r in rows}
    stmt = (_upsert(s, _BATCHES).on_conflict_do_nothing()
            .returning(_BATCHES.c.agent_id, _BATCHES.c.batch_id))  # only the rows inserted now
    result = await s.execute(stmt, [{"agent_id": a, "batch_id": b, "received_at": received_at, "count": n,
                                     "content_hash": hashes.get((a, b))} for a, b, n in batches])
    return {(a, b) for a, b in result.tuples().all()}


async def batch_hashes(s: AsyncSession, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
    """The content hashes recorded for these (agent id, batch id) (None: recorded before 0021)."""
    if not keys:
        return {}
    t = _BATCHES.c
    rows = (await s.execute(select(t.agent_id, t.batch_id, t.content_hash).where(
        _among(s, t.agent_id, {a for a, _ in keys}), _among(s, t.batch_id, {b for _, b in keys})))).tuples().all()
    wanted = set(keys)
    return {(a, b): h for a, b, h in rows if (a, b) in wanted}


async def batch_known(s: AsyncSession, agent_id: str, batch_id: str) -> bool:
    return await s.get(ReadingBatchRow, (agent_id, batch_id)) is not None


async def known_reading_ids(s: AsyncSession, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    return set((await s.scalars(select(ReadingRow.id).where(_among(s, ReadingRow.id, ids)))).all())


@dataclass(frozen=True, slots=True)
class SiteDevices:
    """The devices of an agent's site by serial and by ip (the newest seen wins for an ip), and
    the supply thresholds of the site's dealer (None: it set none, the defaults apply)."""

    by_serial: Mapping[str, str]
    by_ip: Mapping[str, str]
    thresholds: SupplyThresholds | None = None


async def site_devices(s: AsyncSession, wanted: Mapping[str, tuple[set[str], set[str]]]) -> dict[str, SiteDevices]:
    """One query: per agent id, the devices of its site with one of the given (serials, ips),
    with the site's dealer's supply thresholds (what ingest needs to map and judge readings)."""
    serials = {x for ser, _ in wanted.values() for x in ser}
    ips = {x for _, ip in wanted.values() for x in ip}
    found: dict[str, tuple[dict[str, str], dict[str, str]]] = {a: ({}, {}) for a in wanted}
    limits: dict[str, SupplyThresholds] = {}
    if wanted and (serials or ips):
        rows = (await s.execute(
            select(AgentRow.id, DeviceRow.id, DeviceRow.serial, DeviceRow.ip, SupplyThresholdRow.warning_percent,
                   SupplyThresholdRow.critical_percent)
            .join(DeviceRow, DeviceRow.site_id == AgentRow.site_id)
            .join(SiteRow, SiteRow.id == AgentRow.site_id)
            .join(CustomerRow, CustomerRow.id == SiteRow.customer_id)
            .outerjoin(SupplyThresholdRow, SupplyThresholdRow.tenant_id == CustomerRow.dealer_id)
            .where(_among(s, AgentRow.id, wanted),
                   or_(_among(s, DeviceRow.serial, serials), _among(s, DeviceRow.ip, ips)))
            .order_by(DeviceRow.last_seen.asc(), DeviceRow.id.desc())
        )).tuples().all()
        for agent, device_id, serial, ip, warning, critical in rows:  # oldest first: the newest seen wins for an ip
            by_serial, by_ip = found[agent]
            if serial and serial not in by_serial:
                by_serial[serial] = device_id
            by_ip[ip] = device_id
            if warning is not None and critical is not None:
                limits[agent] = SupplyThresholds(warning, critical)
    return {a: SiteDevices(*maps, limits.get(a)) for a, maps in found.items()}


def reading_row(r: Reading, *, agent_id: str, batch_id: str, device_id: str | None) -> dict[str, Any]:
    return {"id": r.id, "agent_id": agent_id, "batch_id": batch_id, "ip": r.ip, "serial": r.serial,
            "taken_at": r.taken_at, "kinds": ",".join(str(k) for k in r.kinds), "device_id": device_id,
            "body": r.to_dict()}


_READING_COLUMNS = ("id", "agent_id", "batch_id", "ip", "serial", "taken_at", "kinds", "device_id", "body")


async def insert_readings(s: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Append to the history: ``COPY`` on PostgreSQL (binary, in the session's transaction),
    one ``executemany`` ``INSERT`` on SQLite (rows batched into multi-row statements by SQLAlchemy)."""
    if not rows:
        return
    if _dialect(s) == "postgresql":
        raw = await _driver(s)
        records = [tuple(json.dumps(r[c], separators=(",", ":")) if c == "body" else r[c]
                         for c in _READING_COLUMNS) for r in rows]
        await raw.copy_records_to_table("readings", records=records, columns=list(_READING_COLUMNS))
        return
    await s.execute(insert(_READINGS), list(rows))  # one executemany: a compiled statement, batched by the driver


@dataclass(slots=True)
class DeviceState:
    """The current state of a device as stored (``*_at``: taken_at of what set each part)."""

    device_id: str
    last_reading_at: datetime | None = None
    counters_at: datetime | None = None
    supplies_at: datetime | None = None
    alerts_at: datetime | None = None
    page_count: int | None = None
    printer_status: str | None = None
    device_status: str | None = None
    error_state: list[str] | None = None


def _json_list(v: Any) -> list[str]:
    """A JSON list column read on asyncpg's connection (text, or already decoded)."""
    if v is None:
        return []
    return list(json.loads(v) if isinstance(v, str | bytes) else v)


async def lock_states(s: AsyncSession, device_ids: Sequence[str]) -> dict[str, DeviceState]:
    """The stored states of these devices, locked until the transaction ends (PostgreSQL), so a
    concurrent batch for the same device waits instead of losing an update."""
    if not device_ids:
        return {}
    if _dialect(s) == "postgresql":  # asyncpg's connection: no per-row result processing
        rows = await (await _driver(s)).fetch(
            "SELECT device_id, last_reading_at, counters_at, supplies_at, alerts_at, page_count, printer_status, "
            "device_status, error_state FROM device_states WHERE device_id = ANY($1::text[]) FOR UPDATE",
            list(device_ids))
        return {r[0]: DeviceState(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], _json_list(r[8])) for r in rows}
    t = _STATES.c
    q = select(t.device_id, t.last_reading_at, t.counters_at, t.supplies_at, t.alerts_at, t.page_count,
               t.printer_status, t.device_status, t.error_state).where(_among(s, t.device_id, device_ids))
    if _dialect(s) == "postgresql":
        q = q.with_for_update()
    return {r[0]: DeviceState(*r[:8], list(r[8] or [])) for r in (await s.execute(q)).tuples().all()}


_STATE_UPSERT: dict[str, Any] = {}  # built once per dialect


def _state_upsert(stmt: Any) -> Any:
    t, x = _STATES.c, stmt.excluded

    def newer(at: str) -> Any:
        return or_(t[at].is_(None), and_(x[at].is_not(None), x[at] >= t[at]))

    def pick(col: str, at: str) -> Any:
        return case((newer(at), x[col]), else_=t[col])

    return stmt.on_conflict_do_update(index_elements=["device_id"], set_={
        "last_reading_at": pick("last_reading_at", "last_reading_at"),
        "counters_at": pick("counters_at", "counters_at"), "page_count": pick("page_count", "counters_at"),
        "supplies_at": pick("supplies_at", "supplies_at"), "alerts_at": pick("alerts_at", "alerts_at"),
        "printer_status": pick("printer_status", "alerts_at"), "device_status": pick("device_status", "alerts_at"),
        "error_state": pick("error_state", "alerts_at"),
    })


def _newer_sql(at: str) -> str:
    return f"(device_states.{at} IS NULL OR (EXCLUDED.{at} IS NOT NULL AND EXCLUDED.{at} >= device_states.{at}))"


_STATE_PARTS = (("last_reading_at", "last_reading_at"), ("page_count", "counters_at"), ("counters_at", "counters_at"),
                ("supplies_at", "supplies_at"), ("alerts_at", "alerts_at"), ("printer_status", "alerts_at"),
                ("device_status", "alerts_at"), ("error_state", "alerts_at"))  # (column, the time that sets it)
_STATE_SET = ", ".join(f"{col} = CASE WHEN {_newer_sql(at)} THEN EXCLUDED.{col} ELSE device_states.{col} END"
                       for col, at in _STATE_PARTS)
# PostgreSQL: the same upsert (``_state_upsert``) with the rows as arrays, one statement, one round trip
# (the text is built from the constant column names above only)
_STATE_UNNEST = (
    "INSERT INTO device_states (device_id, last_reading_at, counters_at, supplies_at, alerts_at, page_count, "  # noqa: S608
    "printer_status, device_status, error_state) SELECT * FROM unnest($1::text[], $2::timestamptz[], "
    "$3::timestamptz[], $4::timestamptz[], $5::timestamptz[], $6::bigint[], $7::text[], $8::text[], $9::json[]) "
    f"ON CONFLICT (device_id) DO UPDATE SET {_STATE_SET}")


async def upsert_states(s: AsyncSession, states: Sequence[DeviceState]) -> None:
    """One ``INSERT ... ON CONFLICT DO UPDATE`` for all devices of a batch. A part is only
    replaced by a newer one (its ``*_at``), so a late delivery never overwrites newer state."""
    if not states:
        return
    values = [{"device_id": st.device_id, "last_reading_at": st.last_reading_at, "counters_at": st.counters_at,
               "supplies_at": st.supplies_at, "alerts_at": st.alerts_at, "page_count": st.page_count,
               "printer_status": st.printer_status, "device_status": st.device_status,
               "error_state": st.error_state or []} for st in states]
    if _dialect(s) == "postgresql":
        await (await _driver(s)).execute(
            _STATE_UNNEST, [st.device_id for st in states], [st.last_reading_at for st in states],
            [st.counters_at for st in states], [st.supplies_at for st in states], [st.alerts_at for st in states],
            [st.page_count for st in states], [st.printer_status for st in states],
            [st.device_status for st in states], [json.dumps(st.error_state or []) for st in states])
        return
    stmt = _STATE_UPSERT.get(_dialect(s))
    if stmt is None:
        stmt = _STATE_UPSERT[_dialect(s)] = _state_upsert(_upsert(s, _STATES))
    await s.execute(stmt, values)


_SUPPLY_COLUMNS = ("device_id", "supply_index", "description", "type", "colour", "unit", "max_capacity", "level",
                   "state", "percent", "taken_at")


_SUPPLIES_UNNEST = (  # the new rows as arrays, $12 the devices whose supplies they are
    "WITH new AS (SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], "  # noqa: S608 (constant names)
    "$7::int[], $8::int[], $9::text[], $10::float8[], $11::timestamptz[]) AS n(" + ", ".join(_SUPPLY_COLUMNS) + ")), "
    "gone AS (DELETE FROM device_supplies d WHERE d.device_id = ANY($12::text[]) AND NOT EXISTS (SELECT 1 FROM new "
    "WHERE new.device_id = d.device_id AND new.supply_index = d.supply_index)) "
    "INSERT INTO device_supplies (" + ", ".join(_SUPPLY_COLUMNS) + ") SELECT * FROM new "
    "ON CONFLICT (device_id, supply_index) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _SUPPLY_COLUMNS[2:]))


async def replace_supplies(s: AsyncSession, current: Mapping[str, tuple[datetime, Sequence[SupplyLevel]]]) -> None:
    """The current supplies of these devices become the given ones (PostgreSQL: one statement over
    arrays; SQLite: one delete, one executemany insert)."""
    if not current:
        return
    records = [(device_id, sup.index, sup.description[:1024], sup.type[:64], sup.colour[:64] if sup.colour else None,
                sup.unit[:64], sup.max_capacity, sup.level, str(sup.state), sup.percent, taken_at)
               for device_id, (taken_at, supplies) in current.items()
               for sup in {x.index: x for x in supplies}.values()]
    if _dialect(s) == "postgresql":  # one statement: upsert the supplies read, delete the ones gone
        columns = [list(c) for c in zip(*records, strict=True)] or [[] for _ in _SUPPLY_COLUMNS]
        await (await _driver(s)).execute(_SUPPLIES_UNNEST, *columns, list(current))
        return
    await s.execute(delete(_SUPPLIES).where(_among(s, _SUPPLIES.c.device_id, current)))
    if records:
        await s.execute(insert(_SUPPLIES), [dict(zip(_SUPPLY_COLUMNS, r, strict=True)) for r in records])


@dataclass(slots=True)
class TrackedAlert:
    """An alert row as ingest tracks it: ``id`` None until inserted."""

    device_id: str
    key: str
    alert: PrinterAlert
    raised_at: datetime
    last_seen_at: datetime
    cleared_at: datetime | None = None
    id: int | None = None
    changed: bool = False


async def open_alerts_of(s: AsyncSession, device_ids: Sequence[str]) -> list[TrackedAlert]:
    if not device_ids:
        return []
    if _dialect(s) == "postgresql":
        found = await (await _driver(s)).fetch(
            'SELECT device_id, alert_key, alert_index, severity, "group", code, description, training_level, '
            "raised_at, last_seen_at, id FROM device_alerts WHERE device_id = ANY($1::text[]) AND cleared_at IS NULL",
            list(device_ids))
        return [TrackedAlert(r[0], r[1], PrinterAlert(r[2], r[3], r[4], r[5], r[6], r[7]), r[8], r[9], None, r[10])
                for r in found]
    t = _ALERTS.c
    rows = (await s.execute(select(
        t.device_id, t.alert_key, t.alert_index, t.severity, t.group, t.code, t.description, t.training_level,
        t.raised_at, t.last_seen_at, t.id,
    ).where(_among(s, t.device_id, device_ids), t.cleared_at.is_(None)))).tuples().all()
    return [TrackedAlert(device, key, PrinterAlert(index, severity, group, code, description, training),
                      raised, seen, None, alert_id)
            for device, key, index, severity, group, code, description, training, raised, seen, alert_id in rows]


async def write_alerts(s: AsyncSession, alerts: Sequence[TrackedAlert]) -> tuple[list[TrackedAlert], list[TrackedAlert]]:
    """Insert the new alerts (``id`` None) and update the changed ones; returns (opened, cleared):
    where an alert opens and where it clears (in this transaction)."""
    opened = [a for a in alerts if a.id is None]
    changed = [a for a in alerts if a.id is not None and a.changed]
    if opened:  # ids in parameter order: DWA sessions and webhooks name an alert by its row id
        ids = (await s.execute(insert(_ALERTS).returning(_ALERTS.c.id, sort_by_parameter_order=True), [{
            "device_id": a.device_id, "alert_key": a.key[:200], "alert_index": a.alert.index,
            "severity": a.alert.severity[:32], "group": a.alert.group[:64], "code": a.alert.code[:64],
            "description": a.alert.description[:1024],
            "training_level": a.alert.training_level[:64] if a.alert.training_level else None,
            "raised_at": a.raised_at, "last_seen_at": a.last_seen_at, "cleared_at": a.cleared_at,
        } for a in opened])).scalars().all()
        for a, new_id in zip(opened, ids, strict=True):
            a.id = new_id
    if changed and _dialect(s) == "postgresql":  # one UPDATE over arrays
        await (await _driver(s)).execute(
            "UPDATE device_alerts AS a SET last_seen_at = u.seen, description = u.text, cleared_at = u.cleared "
            "FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::timestamptz[]) AS u(id, seen, text, cleared) "
            "WHERE a.id = u.id", [a.id for a in changed], [a.last_seen_at for a in changed],
            [a.alert.description[:1024] for a in changed], [a.cleared_at for a in changed])
    elif changed:
        await s.execute(update(_ALERTS).where(_ALERTS.c.id == bindparam("alert_id")).values(
            last_seen_at=bindparam("seen"), description=bindparam("text"), cleared_at=bindparam("cleared")),
            [{"alert_id": a.id, "seen": a.last_seen_at, "text": a.alert.description[:1024], "cleared": a.cleared_at}
             for a in changed])
    cleared = [a for a in alerts if a.cleared_at is not None and (a.id is not None)]
    return opened, cleared


async def owners_of(s: AsyncSession, device_ids: Sequence[str]) -> dict[str, tuple[str, str, str]]:
    """Each device's (site, customer, dealer), one query."""
    if not device_ids:
        return {}
    rows = (await s.execute(
        select(DeviceRow.id, SiteRow.id, CustomerRow.id, CustomerRow.dealer_id)
        .join(SiteRow, SiteRow.id == DeviceRow.site_id).join(CustomerRow, CustomerRow.id == SiteRow.customer_id)
        .where(_among(s, DeviceRow.id, device_ids))
    )).tuples().all()
    return {d: (site, customer, dealer) for d, site, customer, dealer in rows}


async def count_readings(db: Database, agent_id: str | None = None) -> int:
    async with db.session() as s:
        q = select(func.count()).select_from(ReadingRow)
        if agent_id is not None:
            q = q.where(ReadingRow.agent_id == agent_id)
        return int((await s.execute(q)).scalar_one())


async def unmapped_counts(s: AsyncSession, agent_ids: Sequence[str]) -> dict[str, int]:
    """Per agent: stored readings that matched no device of its site (shown on the agents page)."""
    if not agent_ids:
        return {}
    q = (select(ReadingRow.agent_id, func.count()).where(ReadingRow.agent_id.in_(agent_ids),
                                                         ReadingRow.device_id.is_(None))
         .group_by(ReadingRow.agent_id))
    return {agent: int(n) for agent, n in (await s.execute(q)).tuples().all()}


async def readings_for(
    db: Database, *, ip: str | None = None, serial: str | None = None, agent_ids: Sequence[str] | None = None,
    device_id: str | None = None, since: datetime | None = None, until: datetime | None = None,
    kind: ReadingKind | None = None, limit: int = 1000,
) -> list[Reading]:
    """Readings of one device (by device id, serial or ip), oldest first; the newest ``limit``
    of them when there are more."""
    async with db.session() as s:
        q = select(ReadingRow)
        if device_id is not None:
            q = q.where(ReadingRow.device_id == device_id)
        if serial is not None:
            q = q.where(ReadingRow.serial == serial)
        if ip is not None:
            q = q.where(ReadingRow.ip == ip)
        if agent_ids is not None:
            q = q.where(ReadingRow.agent_id.in_(list(agent_ids)))
        if since is not None:
            q = q.where(ReadingRow.taken_at >= since)
        if until is not None:
            q = q.where(ReadingRow.taken_at <= until)
        if kind is not None:
            q = q.where(ReadingRow.kinds.contains(str(kind)))
        rows = (await s.scalars(q.order_by(ReadingRow.taken_at.desc()).limit(limit))).all()
    return [Reading.from_dict(r.body) for r in reversed(rows)]


async def latest_of_kind(db: Database, kind: ReadingKind, **where: object) -> Reading | None:
    found = await readings_for(db, kind=kind, limit=1, **where)  # type: ignore[arg-type]
    return found[-1] if found else None

"""The readings history's upkeep: monthly partitions (PostgreSQL) and retention per dealer.

On PostgreSQL ``readings`` is partitioned by month of ``taken_at`` (migration 0017): one
partition ``readings_yYYYYmMM`` per UTC month and ``readings_default`` for a month without one
yet, so a batch is never refused because its month has no partition. ``ensure_partitions``
creates the coming months' partitions and adopts what landed in the default partition (the
month's partition is made, its rows moved in). SQLite keeps one plain table: the same calls
succeed there and change nothing but rows.

Retention: each dealer keeps ``days`` of history (``readings_retention``; none set:
``DEFAULT_RETENTION_DAYS``). ``delete_expired`` deletes one dealer's older readings in bounded
batches; ``droppable_partitions``/``drop_partition`` remove a whole month on PostgreSQL once
every dealer's retention is past it. The rules of when to run which are in ``fleet.retention``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Select, Table, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.store.models.core import AgentRow, CustomerRow, DealerRow, SiteRow
from printgate.store.models.readings import ReadingRow, ReadingsRetentionRow

DEFAULT_RETENTION_DAYS = 400
MIN_RETENTION_DAYS = 7
MAX_RETENTION_DAYS = 3650
PARTITIONS_AHEAD = 2  # months after the current one whose partitions are kept ready
_READINGS = cast(Table, ReadingRow.__table__)
_PARTITION = re.compile(r"^readings_y(\d{4})m(\d{2})$")


def month_start(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def partition_name(start: datetime) -> str:
    return f"readings_y{start:%Y}m{start:%m}"


def _pg(s: AsyncSession) -> bool:
    return s.get_bind().dialect.name == "postgresql"


# ---- retention settings ------------------------------------------------------------------------
async def retention_of(s: AsyncSession, dealer_id: str) -> tuple[int, bool]:
    """A dealer's days of history kept and whether it set them (False: the default)."""
    row = await s.get(ReadingsRetentionRow, dealer_id)
    return (DEFAULT_RETENTION_DAYS, False) if row is None else (row.days, True)


async def set_retention(s: AsyncSession, dealer_id: str, days: int, *, by: str, now: datetime) -> int | None:
    """Set a dealer's days of history kept; returns the days before (None: it had the default).
    The caller checks the range (``MIN_RETENTION_DAYS``..``MAX_RETENTION_DAYS``) and the dealer."""
    row = await s.get(ReadingsRetentionRow, dealer_id)
    before = None if row is None else row.days
    if row is None:
        row = ReadingsRetentionRow(tenant_id=dealer_id)
        s.add(row)
    row.days, row.updated_at, row.updated_by = days, now, by[:320]
    await s.flush()
    return before


async def dealer_exists(s: AsyncSession, dealer_id: str) -> bool:
    return await s.get(DealerRow, dealer_id) is not None


async def retention_by_dealer(s: AsyncSession) -> dict[str, int]:
    """Every dealer's days of history kept (the default where it set none)."""
    rows = (await s.execute(select(DealerRow.id, ReadingsRetentionRow.days).outerjoin(
        ReadingsRetentionRow, ReadingsRetentionRow.tenant_id == DealerRow.id))).tuples().all()
    return {dealer: days if days is not None else DEFAULT_RETENTION_DAYS for dealer, days in rows}


# ---- retention: rows ---------------------------------------------------------------------------
def _agents_of(dealer_id: str) -> Select[str]:
    return (select(AgentRow.id).join(SiteRow, SiteRow.id == AgentRow.site_id)
            .join(CustomerRow, CustomerRow.id == SiteRow.customer_id).where(CustomerRow.dealer_id == dealer_id))


async def delete_expired(s: AsyncSession, dealer_id: str, *, before: datetime, limit: int) -> int:
    """Delete at most ``limit`` readings of the dealer's agents taken before ``before``; returns
    how many went. Call again (a new transaction each) until it returns less than ``limit``."""
    t = _READINGS.c
    oldest = (select(t.id).where(t.agent_id.in_(_agents_of(dealer_id)), t.taken_at < before)
              .limit(limit).scalar_subquery())
    result = await s.execute(delete(_READINGS).where(t.id.in_(oldest), t.taken_at < before))
    return int(getattr(result, "rowcount", 0) or 0)


async def count_before(s: AsyncSession, dealer_id: str, before: datetime) -> int:
    t = _READINGS.c
    return int((await s.execute(select(func.count()).where(
        t.agent_id.in_(_agents_of(dealer_id)), t.taken_at < before))).scalar_one())


# ---- partitions (PostgreSQL) -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    start: datetime  # first instant of the month (UTC)
    end: datetime  # first instant of the next month


async def partitions(s: AsyncSession) -> list[Partition]:
    """The monthly partitions of ``readings``, oldest first (none on SQLite; the default
    partition is not listed)."""
    if not _pg(s):
        return []
    names = (await s.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'readings'"))).scalars().all()
    out = []
    for name in names:
        m = _PARTITION.match(name)
        if m:
            start = datetime(int(m[1]), int(m[2]), 1, tzinfo=UTC)
            out.append(Partition(name, start, next_month(start)))
    return sorted(out, key=lambda p: p.start)


async def months_in_default(s: AsyncSession) -> list[datetime]:
    """The months of the readings that landed in the default partition (no partition of their own)."""
    if not _pg(s):
        return []
    rows = (await s.execute(text(
        "SELECT DISTINCT date_trunc('month', taken_at AT TIME ZONE 'UTC') FROM readings_default"))).scalars().all()
    return sorted(datetime(m.year, m.month, 1, tzinfo=UTC) for m in rows)


async def create_partition(s: AsyncSession, start: datetime) -> int:
    """Create the partition of the month starting at ``start`` and move that month's rows out of
    the default partition into it (one transaction: the caller's); returns the rows moved. A
    partition that exists already is left alone (0)."""
    start, name = month_start(start), partition_name(month_start(start))
    end = next_month(start)
    exists = (await s.execute(text("SELECT to_regclass(:n)"), {"n": name})).scalar_one()
    if exists is not None:
        return 0
    # the default partition is locked first: a concurrent insert of this month waits instead of
    # landing in it between the move and the attach (the attach would then fail on that row)
    await s.execute(text("LOCK TABLE readings_default IN SHARE ROW EXCLUSIVE MODE"))
    lo, hi = f"'{start.isoformat()}'", f"'{end.isoformat()}'"
    await s.execute(text(f"CREATE TABLE {name} (LIKE readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    # the CHECK lets ATTACH skip scanning the new partition; dropped once attached
    await s.execute(text(f"ALTER TABLE {name} ADD CONSTRAINT {name}_month "
                         f"CHECK (taken_at >= {lo} AND taken_at < {hi})"))
    move = (f"WITH gone AS (DELETE FROM readings_default WHERE taken_at >= {lo} AND taken_at < {hi} "  # noqa: S608
            f"RETURNING *) INSERT INTO {name} SELECT * FROM gone")  # name and bounds are ours: from a date
    moved = await s.execute(text(move))
    await s.execute(text(f"ALTER TABLE readings ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})"))
    await s.execute(text(f"ALTER TABLE {name} DROP CONSTRAINT {name}_month"))
    return int(getattr(moved, "rowcount", 0) or 0)


async def drop_partition(s: AsyncSession, p: Partition) -> int:
    """Drop a whole month of history; returns the rows it held."""
    if _PARTITION.match(p.name) is None:
        raise ValueError(f"not a monthly readings partition: {p.name!r}")
    rows = int((await s.execute(text(f"SELECT count(*) FROM {p.name}"))).scalar_one())  # noqa: S608 (checked)
    await s.execute(text(f"ALTER TABLE readings DETACH PARTITION {p.name}"))
    await s.execute(text(f"DROP TABLE {p.name}"))
    return rows


def droppable(parts: list[Partition], retention_days: dict[str, int], now: datetime) -> list[Partition]:
    """The partitions every dealer's retention is past: their month ended before the longest
    retention's horizon (with no dealer at all: the default's)."""
    horizon = now - timedelta(days=max(retention_days.values(), default=DEFAULT_RETENTION_DAYS))
    return [p for p in parts if p.end <= horizon]

"""The readings history's upkeep in the cloud: monthly partitions ahead, retention per dealer.

``HistoryUpkeep.run`` is a supervised loop of the cloud (``readings-history``): every
``interval_s`` it

1. makes sure the partitions of the current and the next ``PARTITIONS_AHEAD`` months exist
   (PostgreSQL) and gives every month that landed in the default partition its own partition
   (the rows are moved in): a reading of a month nobody prepared for is stored all the same;
2. deletes each dealer's readings older than its retention (``readings_retention``, default
   ``DEFAULT_RETENTION_DAYS``) in batches of ``batch`` rows, one short transaction each, so
   ingest never waits long on it; progress is logged (``readings.retention.progress``) and each
   dealer's total is audited (``fleet.history.pruned``);
3. on PostgreSQL drops a whole monthly partition once every dealer's retention is past its
   month (audited: ``fleet.history.partition_dropped``).

SQL in ``printgate.store.readings_history``; the CLI (``printgate fleet retention``) and the
portal set a dealer's days through ``set_dealer_retention``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fleet.errors import RetentionInvalid
from printgate.domain import AuditEventIn, event_types
from printgate.interfaces import AuditSink
from printgate.logs import get_logger
from printgate.store import readings_history as history
from printgate.store.db import Database

log = get_logger("fleet.retention")

DEFAULT_INTERVAL_S = 3600.0
DEFAULT_BATCH = 5000


@dataclass(slots=True)
class UpkeepReport:
    """What one pass did."""

    partitions_created: list[str] = field(default_factory=list)
    rows_adopted: int = 0  # moved out of the default partition into their month's
    pruned: dict[str, int] = field(default_factory=dict)  # dealer -> readings deleted
    partitions_dropped: list[str] = field(default_factory=list)
    rows_dropped: int = 0


async def set_dealer_retention(db: Database, audit: AuditSink, dealer_id: str, days: int, *, by: str,
                               now: datetime | None = None) -> int | None:
    """Set how many days of readings history a dealer keeps (audited); returns the days before
    (None: the default). Raises ``RetentionInvalid`` for an unknown dealer or days out of range."""
    if not history.MIN_RETENTION_DAYS <= days <= history.MAX_RETENTION_DAYS:
        raise RetentionInvalid(f"retention must be {history.MIN_RETENTION_DAYS}..{history.MAX_RETENTION_DAYS} days, "
                              f"not {days}")
    now = now or datetime.now(UTC)
    async with db.transaction() as s:
        if not await history.dealer_exists(s, dealer_id):
            raise RetentionInvalid(f"no dealer {dealer_id!r}: name an existing dealer id")
        before = await history.set_retention(s, dealer_id, days, by=by, now=now)
    await audit.append(AuditEventIn(type=event_types.FLEET_HISTORY_RETENTION_SET, actor=by, dealer_id=dealer_id,
                                    details={"days": days, "before": before}))
    log.info("readings.retention.set", dealer=dealer_id, days=days, before=before, by=by)
    return before


class HistoryUpkeep:
    def __init__(self, db: Database, audit: AuditSink, *, interval_s: float = DEFAULT_INTERVAL_S,
                 batch: int = DEFAULT_BATCH, clock: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self.audit = audit
        self.interval_s = interval_s
        self.batch = batch
        self.clock = clock or (lambda: datetime.now(UTC))
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Run the next pass now (e.g. after a retention change)."""
        self._wake.set()

    async def run(self) -> None:
        """The supervised loop: one pass, then wait ``interval_s`` (or a ``wake``)."""
        while True:
            await self.run_once()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            except TimeoutError:
                pass

    async def run_once(self) -> UpkeepReport:
        report = UpkeepReport()
        now = self.clock()
        await self.ensure_partitions(now, report)
        await self.prune(now, report)
        await self.drop_partitions(now, report)
        return report

    async def ensure_partitions(self, now: datetime, report: UpkeepReport | None = None) -> UpkeepReport:
        """The coming months' partitions, and one for every month found in the default partition."""
        report = report or UpkeepReport()
        if self.db.dialect != "postgresql":
            return report
        start = history.month_start(now)
        wanted = [start]
        for _ in range(history.PARTITIONS_AHEAD):
            wanted.append(history.next_month(wanted[-1]))
        async with self.db.session() as s:
            have = {p.start for p in await history.partitions(s)}
            wanted += await history.months_in_default(s)
        for month in sorted(set(wanted) - have):
            async with self.db.transaction() as s:
                moved = await history.create_partition(s, month)
            report.partitions_created.append(history.partition_name(month))
            report.rows_adopted += moved
            log.info("readings.partition.created", partition=history.partition_name(month),
                     rows_moved_from_default=moved)
        return report

    async def prune(self, now: datetime, report: UpkeepReport | None = None) -> UpkeepReport:
        """Delete each dealer's readings older than its retention, ``batch`` rows a transaction."""
        report = report or UpkeepReport()
        async with self.db.session() as s:
            retention = await history.retention_by_dealer(s)
        for dealer, days in sorted(retention.items()):
            before = now - timedelta(days=days)
            total = 0
            while True:
                async with self.db.transaction() as s:
                    n = await history.delete_expired(s, dealer, before=before, limit=self.batch)
                total += n
                if n:
                    log.info("readings.retention.progress", dealer=dealer, deleted=total, batch=n,
                             before=before.isoformat())
                if n < self.batch:
                    break
                await asyncio.sleep(0)  # let ingest in between batches
            if total:
                report.pruned[dealer] = total
                await self.audit.append(AuditEventIn(
                    type=event_types.FLEET_HISTORY_PRUNED, actor="system", dealer_id=dealer,
                    details={"deleted": total, "retention_days": days, "before": before.isoformat()}))
                log.info("readings.retention.done", dealer=dealer, deleted=total, retention_days=days)
        return report

    async def drop_partitions(self, now: datetime, report: UpkeepReport | None = None) -> UpkeepReport:
        """PostgreSQL: drop the monthly partitions every dealer's retention is past."""
        report = report or UpkeepReport()
        if self.db.dialect != "postgresql":
            return report
        async with self.db.session() as s:
            retention = await history.retention_by_dealer(s)
            parts = history.droppable(await history.partitions(s), retention, now)
        for p in parts:
            async with self.db.transaction() as s:
                rows = await history.drop_partition(s, p)
            report.partitions_dropped.append(p.name)
            report.rows_dropped += rows
            await self.audit.append(AuditEventIn(
                type=event_types.FLEET_HISTORY_PARTITION_DROPPED, actor="system",
                details={"partition": p.name, "month": p.start.strftime("%Y-%m"), "rows": rows,
                         "longest_retention_days": max(retention.values(), default=history.DEFAULT_RETENTION_DAYS)}))
            log.info("readings.partition.dropped", partition=p.name, rows=rows)
        return report

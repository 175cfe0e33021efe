"""``AuditLog`` with Prometheus metrics (how long each append takes and how many fail), and
the audit outage record.

An outage of the audit store cannot be written while it lasts. This log keeps the latch:
the first append that fails starts an outage (when, the first error), the following ones
are counted (how many events of which types were refused); the first append that works
again is followed by one ``audit.recovered`` record with the start, the end, the duration
and what was refused meanwhile, which security alerting (rule ``platform.audit``) turns
into an operators' alert. If that record cannot be written either, the outage goes on.
The latch lives in this process: every process that writes the audit log (``printgate
serve``, the proxy workers, a portal) records its own outage (``details.process``).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from audit.log import AuditLog
from printgate import metrics
from printgate.domain import AuditEventIn, AuditRecord, Outcome, event_types
from printgate.logs import get_logger

log = get_logger("audit.metered_log")
MAX_TYPES = 20  # refused event types named in the record (the rest are counted as "other")


@dataclass(slots=True)
class Outage:
    started_at: datetime
    began: float  # monotonic
    error: str
    refused: int = 0
    types: Counter[str] = field(default_factory=Counter)

    def refuse(self, events: Sequence[AuditEventIn]) -> None:
        self.refused += len(events)
        self.types.update(e.type for e in events)

    def record(self, ended_at: datetime, ended: float) -> AuditEventIn:
        top = dict(self.types.most_common(MAX_TYPES))
        if len(self.types) > MAX_TYPES:
            top["other"] = self.refused - sum(top.values())
        return AuditEventIn(
            type=event_types.AUDIT_RECOVERED, outcome=Outcome.FAILURE, actor="system:audit-log",
            details={"started_at": self.started_at.isoformat(), "ended_at": ended_at.isoformat(),
                     "duration_s": round(ended - self.began, 3), "refused": self.refused,
                     "refused_types": top, "error": self.error, "process": os.getpid()})


class MeteredAuditLog(AuditLog):
    outage: Outage | None = None

    async def append_many(self, events: Sequence[AuditEventIn]) -> list[AuditRecord]:
        began = time.perf_counter()
        try:
            records = await super().append_many(events)
        except Exception as exc:
            metrics.AUDIT_APPEND_FAILURES.inc()
            metrics.DATABASE_ERRORS.labels("audit").inc()
            self._refused(events, exc)
            raise
        finally:
            metrics.AUDIT_APPEND_SECONDS.observe(time.perf_counter() - began)
        if self.outage is not None:
            await self._recovered()
        return records

    def _refused(self, events: Sequence[AuditEventIn], exc: BaseException) -> None:
        if self.outage is None:
            self.outage = Outage(datetime.now(UTC), time.monotonic(), f"{type(exc).__name__}: {exc}"[:500])
            log.error("audit.outage_started", error=self.outage.error)
        self.outage.refuse(events)

    async def _recovered(self) -> None:
        outage, self.outage = self.outage, None  # taken before the await: one record per outage
        if outage is None:
            return
        event = outage.record(datetime.now(UTC), time.monotonic())
        try:
            await super().append_many([event])
        except Exception as exc:  # down again: the outage goes on, its record later
            if self.outage is None:
                self.outage = outage
            else:  # another append failed meanwhile: one outage, from the first start
                outage.refused += self.outage.refused
                outage.types.update(self.outage.types)
                self.outage = outage
            log.error("audit.outage_record_failed", error=str(exc)[:300])
            return
        log.warning("audit.outage_recorded", duration_s=event.details["duration_s"], refused=outage.refused)

"""``AuditLog`` with Prometheus metrics: how long each append takes and how many fail."""

from __future__ import annotations

import time
from collections.abc import Sequence

from audit.log import AuditLog
from printgate import metrics
from printgate.domain import AuditEventIn, AuditRecord


class MeteredAuditLog(AuditLog):
    async def append_many(self, events: Sequence[AuditEventIn]) -> list[AuditRecord]:
        began = time.perf_counter()
        try:
            return await super().append_many(events)
        except Exception:
            metrics.AUDIT_APPEND_FAILURES.inc()
            metrics.DATABASE_ERRORS.labels("audit").inc()
            raise
        finally:
            metrics.AUDIT_APPEND_SECONDS.observe(time.perf_counter() - began)

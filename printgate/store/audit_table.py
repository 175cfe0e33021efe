"""Plain append-only audit table: the simple sink used until the chained log.

``audit/`` builds the tamper-evident log; this sink only inserts rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select

from printgate.domain import AuditEventIn
from printgate.store.db import Database
from printgate.store.models.core import AuditEventRow


class TableAuditSink:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(self, event: AuditEventIn) -> None:
        async with self._db.transaction() as s:
            s.add(AuditEventRow(
                at=datetime.now(UTC), type=event.type, outcome=event.outcome.value,
                actor=event.actor, dealer_id=event.dealer_id, customer_id=event.customer_id,
                device_id=event.device_id, session_id=event.session_id,
                source_ip=event.source_ip, details=dict(event.details),
            ))

    async def events(self, *, session_id: str | None = None) -> Sequence[AuditEventRow]:
        async with self._db.session() as s:
            q = select(AuditEventRow).order_by(AuditEventRow.seq)
            if session_id is not None:
                q = q.where(AuditEventRow.session_id == session_id)
            return (await s.execute(q)).scalars().all()

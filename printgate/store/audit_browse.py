"""Browsing the audit log newest first, a page at a time (the auditor's /audit page).

``printgate.store.audit.query_records`` walks forward from a sequence number
(exports, verification); a person reading the log wants the latest events
first and "older" pages after that, which is this keyset query on ``seq``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from printgate.store.db import Database
from printgate.store.models.audit import AuditPersonalRow, AuditRecordRow


async def newest_records(
    db: Database,
    *,
    dealer_id: str | None = None,
    customer_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    types: Sequence[str] = (),
    outcome: str | None = None,
    device_id: str | None = None,
    session_id: str | None = None,
    actor: str | None = None,
    before_seq: int | None = None,
    limit: int = 50,
) -> Sequence[AuditRecordRow]:
    """Records matching every given criterion, highest seq first, all below
    ``before_seq`` when given (pruned records excluded)."""
    conds: list[Any] = [AuditRecordRow.entry.is_not(None)]
    if before_seq is not None:
        conds.append(AuditRecordRow.seq < before_seq)
    for col, value in ((AuditRecordRow.dealer_id, dealer_id), (AuditRecordRow.customer_id, customer_id),
                       (AuditRecordRow.outcome, outcome), (AuditRecordRow.device_id, device_id),
                       (AuditRecordRow.session_id, session_id)):
        if value is not None:
            conds.append(col == value)
    if since is not None:
        conds.append(AuditRecordRow.at >= since)
    if until is not None:
        conds.append(AuditRecordRow.at < until)
    if types:
        conds.append(AuditRecordRow.type.in_(list(types)))
    if actor is not None:
        conds.append(AuditRecordRow.seq.in_(select(AuditPersonalRow.seq).where(AuditPersonalRow.actor == actor)))
    async with db.session() as s:
        q = select(AuditRecordRow).where(*conds).order_by(AuditRecordRow.seq.desc()).limit(limit)
        return (await s.execute(q)).scalars().all()

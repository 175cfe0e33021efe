"""What the gateway knows of its audit witnesses: when each last returned a cosignature.

Read by ``audit.checkpoint_timer`` to notice a witness that has gone silent (one aggregate
query per tick: the cosignature table grows by a row per witness and checkpoint)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from printgate.store.db import Database
from printgate.store.models.audit import AuditCosignatureRow


@dataclass(frozen=True, slots=True)
class WitnessSeen:
    witness: str  # the witness's key id
    tree_size: int  # the newest checkpoint it cosigned
    received_at: datetime  # when its newest cosignature arrived


async def last_seen(db: Database) -> list[WitnessSeen]:
    """Each witness that ever cosigned, with its newest cosignature."""
    async with db.session() as s:
        rows = (await s.execute(
            select(AuditCosignatureRow.witness, func.max(AuditCosignatureRow.tree_size),
                   func.max(AuditCosignatureRow.received_at))
            .group_by(AuditCosignatureRow.witness).order_by(AuditCosignatureRow.witness))).all()
    return [WitnessSeen(str(w), int(size), at) for w, size, at in rows]

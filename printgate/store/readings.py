"""Cloud side of monitoring: idempotent batch ingestion and fleet queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from printgate.domain import Reading, ReadingKind
from printgate.store.db import Database
from printgate.store.models.readings import ReadingBatchRow, ReadingRow


async def ingest_batch(
    db: Database, agent_id: str, batch_id: str, readings: Sequence[Reading], *, now: datetime | None = None
) -> bool:
    """Store a batch once. Returns False (and stores nothing) for a batch id already seen."""
    received = now or datetime.now(UTC)
    try:
        async with db.transaction() as s:
            s.add(ReadingBatchRow(agent_id=agent_id, batch_id=batch_id, received_at=received, count=len(readings)))
            await s.flush()
            seen = set(
                (await s.scalars(select(ReadingRow.id).where(ReadingRow.id.in_([r.id for r in readings])))).all()
            ) if readings else set()
            for r in readings:
                if r.id in seen:
                    continue  # a reading re-sent in a new batch is still stored once
                seen.add(r.id)
                s.add(ReadingRow(
                    id=r.id, agent_id=agent_id, batch_id=batch_id, ip=r.ip, serial=r.serial,
                    taken_at=r.taken_at, kinds=",".join(str(k) for k in r.kinds), body=r.to_dict(),
                ))
    except IntegrityError:
        return False
    return True


async def count_readings(db: Database, agent_id: str | None = None) -> int:
    async with db.session() as s:
        q = select(func.count()).select_from(ReadingRow)
        if agent_id is not None:
            q = q.where(ReadingRow.agent_id == agent_id)
        return int((await s.execute(q)).scalar_one())


async def readings_for(
    db: Database, *, ip: str | None = None, serial: str | None = None, agent_ids: Sequence[str] | None = None,
    since: datetime | None = None, kind: ReadingKind | None = None, limit: int = 1000,
) -> list[Reading]:
    """Readings of one device (by serial, else ip), oldest first."""
    async with db.session() as s:
        q = select(ReadingRow)
        if serial is not None:
            q = q.where(ReadingRow.serial == serial)
        if ip is not None:
            q = q.where(ReadingRow.ip == ip)
        if agent_ids is not None:
            q = q.where(ReadingRow.agent_id.in_(list(agent_ids)))
        if since is not None:
            q = q.where(ReadingRow.taken_at >= since)
        if kind is not None:
            q = q.where(ReadingRow.kinds.contains(str(kind)))
        rows = (await s.scalars(q.order_by(ReadingRow.taken_at.desc()).limit(limit))).all()
    return [Reading.from_dict(r.body) for r in reversed(rows)]


async def latest_of_kind(db: Database, kind: ReadingKind, **where: object) -> Reading | None:
    found = await readings_for(db, kind=kind, limit=1, **where)  # type: ignore[arg-type]
    return found[-1] if found else None

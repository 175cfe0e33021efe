"""Cloud side of monitoring: idempotent batch ingestion, device mapping, and
the current state per device (supplies, open alerts) kept as readings arrive.

``ingest_payload`` is what the gateway's agent-channel handler calls with the
raw upload; ``ingest_batch`` takes already-parsed readings.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from printgate import metrics
from printgate.domain import Reading, ReadingKind
from printgate.logs import get_logger
from printgate.store.db import Database
from printgate.store.models.core import AgentRow, DeviceRow
from printgate.store.models.readings import ReadingBatchRow, ReadingRow
from printgate.store.readings_payload import parse_payload
from printgate.store.readings_state import apply_reading

log = get_logger("store.readings")


async def ingest_payload(db: Database, agent_id: str, batch_id: str, payload: bytes) -> bool:
    """Store the UTF-8 JSON upload ``{"readings": [Reading.to_dict(), ...]}`` once.

    Raises ``ReadingsPayloadInvalid`` (nothing stored) for a malformed payload;
    returns False for a batch id this agent already delivered.
    """
    readings = parse_payload(batch_id, payload)
    metrics.READINGS_RECEIVED.inc(len(readings))
    stored = await ingest_batch(db, agent_id, batch_id, readings)
    if stored:
        metrics.READINGS_STORED.inc(len(readings))
    return stored


async def ingest_batch(
    db: Database, agent_id: str, batch_id: str, readings: Sequence[Reading], *, now: datetime | None = None
) -> bool:
    """Store a batch once. Returns False (and stores nothing) for a batch id already seen.

    Each reading is mapped to the device of the agent's site (serial first,
    then ip); mapped readings update that device's current state.
    """
    received = now or datetime.now(UTC)
    for attempt in range(3):
        try:
            mapped = await _ingest_once(db, agent_id, batch_id, readings, received)
        except IntegrityError:
            if await _batch_known(db, agent_id, batch_id):
                return False  # delivered before (or by a concurrent upload of the same batch)
            if attempt == 2:
                raise
            continue  # lost a race on a device's state row: the transaction is redone
        if mapped < len(readings):  # kept in the readings table (device_id null), never silently
            unmapped = len(readings) - mapped
            metrics.READINGS_UNMAPPED.labels(agent_id).inc(unmapped)
            log.warning("readings.unmapped", agent=agent_id, batch=batch_id, count=unmapped,
                        hint="no device of the agent's site has these readings' serial or address; "
                             "check the agent's inventory (printers found by SNMP become devices)")
        return True
    raise AssertionError("unreachable")


async def _batch_known(db: Database, agent_id: str, batch_id: str) -> bool:
    async with db.session() as s:
        return await s.get(ReadingBatchRow, (agent_id, batch_id)) is not None


async def _ingest_once(
    db: Database, agent_id: str, batch_id: str, readings: Sequence[Reading], received: datetime
) -> int:
    async with db.transaction() as s:
        s.add(ReadingBatchRow(agent_id=agent_id, batch_id=batch_id, received_at=received, count=len(readings)))
        await s.flush()
        seen = set(
            (await s.scalars(select(ReadingRow.id).where(ReadingRow.id.in_([r.id for r in readings])))).all()
        ) if readings else set()
        mapper = _DeviceMapper(s, agent_id)
        fresh: list[tuple[str, Reading]] = []
        for r in sorted(readings, key=lambda r: r.taken_at):
            if r.id in seen:
                continue  # a reading re-sent in a new batch is still stored once
            seen.add(r.id)
            device_id = await mapper.device_of(r)
            s.add(ReadingRow(
                id=r.id, agent_id=agent_id, batch_id=batch_id, ip=r.ip, serial=r.serial,
                taken_at=r.taken_at, kinds=",".join(str(k) for k in r.kinds), body=r.to_dict(),
                device_id=device_id,
            ))
            if device_id is not None:
                fresh.append((device_id, r))
        for device_id, r in fresh:
            await apply_reading(s, device_id, r)
    return len(fresh)


class _DeviceMapper:
    """Device of a reading within the reporting agent's site: serial, else ip."""

    def __init__(self, s: AsyncSession, agent_id: str) -> None:
        self.s, self.agent_id = s, agent_id
        self._site: str | None = None
        self._site_known = False
        self._cache: dict[tuple[str | None, str], str | None] = {}

    async def _site_id(self) -> str | None:
        if not self._site_known:
            agent = await self.s.get(AgentRow, self.agent_id)
            self._site, self._site_known = (agent.site_id if agent else None), True
        return self._site

    async def device_of(self, r: Reading) -> str | None:
        key = (r.serial, r.ip)
        if key in self._cache:
            return self._cache[key]
        site = await self._site_id()
        found: str | None = None
        if site is not None:
            if r.serial:
                found = (await self.s.scalars(
                    select(DeviceRow.id).where(DeviceRow.site_id == site, DeviceRow.serial == r.serial)
                )).first()
            if found is None:
                found = (await self.s.scalars(
                    select(DeviceRow.id).where(DeviceRow.site_id == site, DeviceRow.ip == r.ip)
                    .order_by(DeviceRow.last_seen.desc())
                )).first()
        self._cache[key] = found
        return found


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
    """Readings of one device (by device id, serial or ip), oldest first; the
    newest ``limit`` of them when there are more."""
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

"""Ingest: the one entry point for readings agents upload (the agent channel calls it).

A batch is decoded and checked at the edge (``fleet.decode``), then stored in ONE
transaction: the batch ledger (``reading_batches``: the one idempotency record; a batch id
an agent delivered before changes nothing), the history (``COPY`` on PostgreSQL, multi-row
``INSERT`` on SQLite), the current device states (one upsert), supplies and alerts. The
answer (stored, duplicate, the readings refused and why) is given only once that committed.

``FleetIngest`` bounds the batches in flight: beyond ``max_in_flight`` an upload is refused
at once with ``IngestBusy`` (the agent keeps it queued and retries after the hint), so the
cloud's memory does not grow with a backlog.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.decode import DecodedBatch, Rejection, decode_batch, decode_v1
from fleet.errors import IngestBusy
from fleet.state import apply_batch
from printgate import metrics
from printgate.domain import Reading
from printgate.logs import get_logger
from printgate.store import outbox
from printgate.store import readings as rows
from printgate.store.db import Database
from printgate.wire import agent_pb2 as pb

log = get_logger("fleet.ingest")
DEFAULT_MAX_IN_FLIGHT = 8
DEFAULT_RETRY_AFTER_S = 2.0


@dataclass(frozen=True, slots=True)
class IngestResult:
    duplicate: bool
    stored: int = 0
    unmapped: int = 0
    rejected: list[Rejection] = field(default_factory=list)


class FleetIngest:
    """``await FleetIngest(db).ingest(agent_id, batch)``; ``IngestBusy`` when ``max_in_flight``
    batches are being stored already."""

    def __init__(self, db: Database, *, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                 retry_after_s: float = DEFAULT_RETRY_AFTER_S) -> None:
        self._db = db
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.refused_busy = 0

    async def ingest(self, agent_id: str, batch: pb.ReadingsBatch) -> IngestResult:
        if self.in_flight >= self.max_in_flight:
            self.refused_busy += 1
            metrics.READINGS_BUSY.inc()
            raise IngestBusy(f"fleet ingest is behind ({self.in_flight} batches being stored): keep the batch "
                             f"queued and send it again in {self.retry_after_s:g} s",
                             retry_after_s=self.retry_after_s)
        self.in_flight += 1
        try:
            decoded = decode_batch(batch)  # ReadingsPayloadInvalid: the whole batch is unreadable
            return await store_decoded(self._db, agent_id, decoded)
        finally:
            self.in_flight -= 1


    async def answer(self, agent_id: str, batch: pb.ReadingsBatch) -> pb.Ack:
        """``ingest`` as the agent channel answers it: the acknowledgement, given once stored."""
        result = await self.ingest(agent_id, batch)
        return pb.Ack(id=batch.batch_id, duplicate=result.duplicate, stored=result.stored,
                      rejected=[pb.ReadingRejection(position=r.position, reading_id=r.reading_id, reason=r.reason)
                                for r in result.rejected])


async def ingest_payload(db: Database, agent_id: str, batch_id: str, payload: bytes) -> bool:
    """A version 1 (JSON) batch; True when stored now, False for a batch delivered before."""
    return not (await store_decoded(db, agent_id, decode_v1(batch_id, payload))).duplicate


async def ingest_batch(db: Database, agent_id: str, batch_id: str, readings: Sequence[Reading], *,
                       now: datetime | None = None) -> bool:
    """Already-decoded readings; True when stored now, False for a batch delivered before."""
    decoded = DecodedBatch(batch_id, 2, list(readings))
    return not (await store_decoded(db, agent_id, decoded, now=now)).duplicate


async def store_decoded(db: Database, agent_id: str, batch: DecodedBatch, *,
                        now: datetime | None = None) -> IngestResult:
    received = now or datetime.now(UTC)
    metrics.READINGS_RECEIVED.inc(batch.received)
    if batch.rejected:
        metrics.READINGS_REJECTED.inc(len(batch.rejected))
        log.warning("readings.rejected", agent=agent_id, batch=batch.batch_id, count=len(batch.rejected),
                    reasons=[r.reason for r in batch.rejected[:5]])
    for attempt in range(3):
        try:
            result = await _store_once(db, agent_id, batch, received)
        except IntegrityError:  # a reading or alert raced with a concurrent batch: redo the transaction
            if attempt == 2:
                raise
            continue
        if result.duplicate:
            return result
        metrics.READINGS_STORED.inc(result.stored)
        if result.unmapped:  # kept in the history (device_id null), never silently
            metrics.READINGS_UNMAPPED.labels(agent_id).inc(result.unmapped)
            log.warning("readings.unmapped", agent=agent_id, batch=batch.batch_id, count=result.unmapped,
                        hint="no device of the agent's site has these readings' serial or address; "
                             "check the agent's inventory (printers found by SNMP become devices)")
        return result
    raise AssertionError("unreachable")


async def _store_once(db: Database, agent_id: str, batch: DecodedBatch, received: datetime) -> IngestResult:
    async with db.transaction() as s:
        if not await rows.claim_batch(s, agent_id, batch.batch_id, received_at=received,
                                      count=len(batch.readings)):
            return IngestResult(duplicate=True)
        known = await rows.known_reading_ids(s, [r.id for r in batch.readings])
        fresh = [r for r in batch.readings if r.id not in known]  # re-sent in a new batch: stored once
        devices = await rows.site_devices(s, agent_id, serials=[r.serial for r in fresh if r.serial],
                                          ips=[r.ip for r in fresh])
        mapped: list[tuple[str, Reading]] = []
        history = []
        for r in fresh:
            device_id = (devices.by_serial.get(r.serial) if r.serial else None) or devices.by_ip.get(r.ip)
            history.append(rows.reading_row(r, agent_id=agent_id, batch_id=batch.batch_id, device_id=device_id))
            if device_id is not None:
                mapped.append((device_id, r))
        await rows.insert_readings(s, history)
        ids = sorted({d for d, _ in mapped})
        if ids:
            states = await rows.lock_states(s, ids)
            changes = apply_batch(mapped, states, await rows.open_alerts_of(s, ids),
                                  await rows.thresholds_of_devices(s, ids))
            await rows.upsert_states(s, changes.states)
            await rows.replace_supplies(s, changes.supplies)
            opened, cleared = await rows.write_alerts(s, changes.alerts)
            await _announce(s, opened, cleared)
    return IngestResult(duplicate=False, stored=len(fresh), unmapped=len(fresh) - len(mapped),
                        rejected=batch.rejected)


async def _announce(s: AsyncSession, opened: Sequence[rows.OpenAlert], cleared: Sequence[rows.OpenAlert]) -> None:
    """Alert changes go to the outbox (webhooks) in the ingest's own transaction: an alert that
    opened or cleared is announced exactly when it is stored."""
    for kind, alerts in ((outbox.ALERT_OPENED, opened), (outbox.ALERT_CLEARED, cleared)):
        for a in alerts:
            await outbox.enqueue_for_device(s, kind=kind, device_id=a.device_id, payload={
                "alert_id": a.id, "device_id": a.device_id, "severity": a.alert.severity, "code": a.alert.code,
                "group": a.alert.group, "description": a.alert.description, "raised_at": a.raised_at.isoformat(),
                "cleared_at": a.cleared_at.isoformat() if a.cleared_at else None})
